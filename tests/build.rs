//! Generates the protobuf types of `proto/*.proto` (the Triple tests' protobuf-mode
//! services) with protox and prost-build: no `protoc` binary is needed.

fn main() {
    println!("cargo:rerun-if-changed=proto/greeter.proto");
    println!("cargo:rerun-if-changed=proto/streams.proto");
    let files = protox::compile(["greeter.proto", "streams.proto"], ["proto"])
        .expect("the .proto files parse");
    prost_build::Config::new()
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_fds(files)
        .expect("prost-build writes the greeter types");
}
