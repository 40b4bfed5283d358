//! A plugin crate registers its extension only by being linked; another crate finds it by name.

use rpc_core::extension;
use rpc_core::serialize::{self, Serialization};
use rpc_tests as _;

#[test]
fn linked_plugin_is_found_by_name() {
    let names = extension::names::<dyn Serialization>();
    assert!(names.contains(&"bincode"), "{names:?}");
    let bincode = extension::get::<dyn Serialization>("bincode").expect("linked plugin");
    assert_eq!(bincode.id(), serialize::ids::BINCODE);
    assert!(!bincode.self_describing());
}

#[test]
fn linked_plugin_is_found_by_wire_id_and_works() {
    let ser = serialize::by_id(serialize::ids::BINCODE).expect("by id");
    let mut out = Vec::new();
    ser.serialize(&(1u32, "two".to_string()), &mut out)
        .expect("encode");
    let back: (u32, String) = serialize::decode(ser, &out).expect("decode");
    assert_eq!(back, (1, "two".to_string()));
}

#[test]
fn plugin_is_selected_by_url_key() {
    let url = rpc_core::Url::parse("dubbo://127.0.0.1:20880/S?serialization=bincode").expect("url");
    let ser = extension::adaptive::<dyn Serialization>(&url, "m").expect("adaptive");
    assert_eq!(ser.id(), serialize::ids::BINCODE);
}
