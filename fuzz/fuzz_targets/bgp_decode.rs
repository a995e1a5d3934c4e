//! Fuzz target: the BGP decoder never panics on any bytes under any session context, and every
//! message it accepts re-encodes into bytes it accepts again (RFC 7606 handling included).
#![no_main]

use bgp::wire::{CodecContext, Family, FamilySet, decode_message, encode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else { return };
    let families = |bit: u8| match (flags >> bit) & 3 {
        0 => FamilySet::EMPTY,
        1 => FamilySet::of(&[Family::Ipv4Unicast]),
        2 => FamilySet::of(&[Family::Ipv6Unicast]),
        _ => FamilySet::of(&Family::ALL),
    };
    let ctx = CodecContext {
        four_octet_as: flags & 1 != 0,
        ibgp: flags & 2 != 0,
        add_path_receive: families(2),
        add_path_send: families(2),
        extended_message: false,
    };
    let _ = bgp::wire::frame_length(bytes, &ctx);
    if let Ok(message) = decode_message(bytes, &ctx)
        && let Ok(encoded) = encode_message(&message, &ctx)
    {
        decode_message(&encoded, &ctx).expect("our own encoding decodes");
    }
});
