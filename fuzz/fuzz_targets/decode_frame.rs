//! Any bytes as a client frame and as a server frame: decoding never panics, and a frame that
//! decodes encodes to text that decodes to the same message, events read as the protocol reads
//! them (`same_events`).
#![no_main]

use eventsync::protocol::{decode_client, decode_server, encode, Event, ServerMessage};
use eventsync::VectorClock;
use libfuzzer_sys::fuzz_target;

/// The message with its events' vectors as readers take them (PROTOCOL.md section 2): an event
/// without a `vectorClock` stands for its own entry (`clientId` -> `sequenceNum`), which is how
/// it is written; a history page's events are written compact, without one (the vector is
/// derived), so theirs is their own entry whatever they were read with.
fn same_events(message: ServerMessage) -> ServerMessage {
    let own = |event: &mut Event, always: bool| {
        if always || event.vector_clock.is_empty() {
            event.vector_clock =
                VectorClock::from_iter([(event.client_id.clone(), event.sequence_num)]);
        }
    };
    match message {
        ServerMessage::Events { mut events, head_seq, has_more } => {
            events.iter_mut().for_each(|e| own(e, false));
            ServerMessage::Events { events, head_seq, has_more }
        }
        ServerMessage::Event { mut events } => {
            events.iter_mut().for_each(|e| own(e, false));
            ServerMessage::Event { events }
        }
        ServerMessage::History(mut answer) => {
            answer.events.iter_mut().for_each(|e| own(e, true));
            ServerMessage::History(answer)
        }
        other => other,
    }
}

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
        assert_eq!(
            decode_server(&again).ok().map(same_events),
            Some(same_events(message)),
            "{again}"
        );
    }
});
