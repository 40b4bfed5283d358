//! Tag bytes and compact-form ranges of the Hessian 2.0 grammar.

pub(crate) const BC_END: u8 = b'Z';
pub(crate) const BC_REF: u8 = 0x51; // 'Q'

pub(crate) const BC_INT_ZERO: u8 = 0x90;
pub(crate) const BC_INT_BYTE_ZERO: u8 = 0xc8;
pub(crate) const BC_INT_SHORT_ZERO: u8 = 0xd4;
pub(crate) const INT_DIRECT_MIN: i32 = -0x10;
pub(crate) const INT_DIRECT_MAX: i32 = 0x2f;
pub(crate) const INT_BYTE_MIN: i32 = -0x800;
pub(crate) const INT_BYTE_MAX: i32 = 0x7ff;
pub(crate) const INT_SHORT_MIN: i32 = -0x40000;
pub(crate) const INT_SHORT_MAX: i32 = 0x3ffff;

pub(crate) const BC_LONG_ZERO: u8 = 0xe0;
pub(crate) const BC_LONG_BYTE_ZERO: u8 = 0xf8;
pub(crate) const BC_LONG_SHORT_ZERO: u8 = 0x3c;
pub(crate) const BC_LONG_INT: u8 = 0x59; // 'Y'
pub(crate) const LONG_DIRECT_MIN: i64 = -0x08;
pub(crate) const LONG_DIRECT_MAX: i64 = 0x0f;
pub(crate) const LONG_BYTE_MIN: i64 = -0x800;
pub(crate) const LONG_BYTE_MAX: i64 = 0x7ff;
pub(crate) const LONG_SHORT_MIN: i64 = -0x40000;
pub(crate) const LONG_SHORT_MAX: i64 = 0x3ffff;

pub(crate) const BC_DOUBLE_ZERO: u8 = 0x5b;
pub(crate) const BC_DOUBLE_ONE: u8 = 0x5c;
pub(crate) const BC_DOUBLE_BYTE: u8 = 0x5d;
pub(crate) const BC_DOUBLE_SHORT: u8 = 0x5e;
pub(crate) const BC_DOUBLE_MILL: u8 = 0x5f;

pub(crate) const BC_DATE: u8 = 0x4a; // 'J'
pub(crate) const BC_DATE_MINUTE: u8 = 0x4b; // 'K'

pub(crate) const BC_STRING_CHUNK: u8 = 0x52; // 'R'
pub(crate) const BC_STRING_SHORT: u8 = 0x30;
pub(crate) const STRING_DIRECT_MAX: usize = 0x1f;
pub(crate) const STRING_SHORT_MAX: usize = 0x3ff;

pub(crate) const BC_BINARY_CHUNK: u8 = 0x41; // 'A'
pub(crate) const BC_BINARY_DIRECT: u8 = 0x20;
pub(crate) const BC_BINARY_SHORT: u8 = 0x34;
pub(crate) const BINARY_DIRECT_MAX: usize = 0x0f;
pub(crate) const BINARY_SHORT_MAX: usize = 0x3ff;

pub(crate) const BC_LIST_VARIABLE: u8 = 0x55; // 'U'
pub(crate) const BC_LIST_FIXED: u8 = 0x56; // 'V'
pub(crate) const BC_LIST_VARIABLE_UNTYPED: u8 = 0x57; // 'W'
pub(crate) const BC_LIST_FIXED_UNTYPED: u8 = 0x58; // 'X'
pub(crate) const BC_LIST_DIRECT: u8 = 0x70;
pub(crate) const BC_LIST_DIRECT_UNTYPED: u8 = 0x78;
pub(crate) const LIST_DIRECT_MAX: usize = 0x07;

pub(crate) const BC_OBJECT_DIRECT: u8 = 0x60;
pub(crate) const OBJECT_DIRECT_MAX: usize = 0x0f;
