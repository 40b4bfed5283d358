//! Generates the protobuf types of `proto/greeter.proto` (the Triple tests' protobuf-mode
//! service) with protox and prost-build: no `protoc` binary is needed.

fn main() {
    println!("cargo:rerun-if-changed=proto/greeter.proto");
    let files = protox::compile(["greeter.proto"], ["proto"]).expect("proto/greeter.proto parses");
    prost_build::Config::new()
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_fds(files)
        .expect("prost-build writes the greeter types");
}
