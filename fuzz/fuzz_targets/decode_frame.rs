//! Any bytes as a client frame and as a server frame: decoding never panics, and a frame that
//! decodes encodes to text that decodes to the same message.
#![no_main]

use eventsync::protocol::{decode_client, decode_server, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode_client(text, 1 << 20) {
        let again = encode(&message);
        assert_eq!(
            decode_client(&again, usize::MAX).ok(),
            Some(message),
            "{again}"
        );
    }
    if let Ok(message) = decode_server(text) {
        let again = encode(&message);
        assert_eq!(decode_server(&again).ok(), Some(message), "{again}");
    }
});
