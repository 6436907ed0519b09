//! Live edits: fan-out, the order of events and answers, resends, stale bases, impossible
//! positions, pings.

use super::*;

#[tokio::test]
async fn live_edits_fan_out_to_every_subscriber_without_gaps() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "live", "alice").await;
    let mut subscribers = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let (ws, head) = Ws::open(&server, "live", name).await;
        assert_eq!(head, 0);
        subscribers.push(ws);
    }

    let mut head = order(
        &mut alice,
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {"items": []}}]),
    )
    .await;
    for client_seq in 2..=20u64 {
        head = order(
            &mut alice,
            client_seq,
            head,
            Operation::Update,
            json!([{"op": "add", "path": "/items/-", "value": client_seq}]),
        )
        .await;
        if client_seq == 10 {
            // An HTTP write in the middle is a live event like any other.
            head = put(&server, "live", &json!({"items": ["reset"]})).await;
        }
    }
    // And a submit of several edits at once.
    alice
        .submit(
            (21..=25)
                .map(|s| {
                    edit(
                        s,
                        head,
                        Operation::Update,
                        json!([{"op": "add", "path": "/items/-", "value": s}]),
                    )
                })
                .collect(),
        )
        .await;
    let (_, answer) = alice.answer().await;
    assert_eq!(expect_ack(answer).len(), 5);
    let head = head + 5;
    assert_eq!(head, 26);

    for (i, ws) in subscribers.iter_mut().enumerate() {
        let mut seen: Vec<Event> = Vec::new();
        while seen.last().map_or(0, |e| e.sequence_num) < head {
            match ws.recv().await {
                ServerMessage::Event { events } => seen.extend(events),
                other => panic!("subscriber {i} got {other:?}"),
            }
        }
        let seqs: Vec<u64> = seen.iter().map(|e| e.sequence_num).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "subscriber {i}");
        assert_eq!(seen[10].client_id, "server");
        assert_eq!(seen[10].client_seq, None);
        assert_eq!(seen[25].client_seq, Some(25));
        // Nothing more: no repeats, no acks for edits that are not theirs.
        assert!(ws.silent_for(Duration::from_millis(200)).await);
        assert_eq!(ws.ping(3).await, Some(head));
    }
    let snapshot = document(&server, "live").await;
    assert_eq!(snapshot["sequenceNum"], head);
    let mut expected = vec![json!("reset")];
    expected.extend((11..=25).map(|n| json!(n)));
    assert_eq!(snapshot["document"]["items"], Value::Array(expected));
}

#[tokio::test]
async fn an_accepted_edits_event_precedes_its_ack() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "order", "alice").await;
    alice
        .submit(vec![
            edit(
                1,
                0,
                Operation::Create,
                json!([{"op": "add", "path": "", "value": {"n": 0}}]),
            ),
            edit(
                2,
                0,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": 1}]),
            ),
            edit(
                3,
                0,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": 2}]),
            ),
        ])
        .await;
    // Frame by frame: every event first, then the one ack.
    let mut events = Vec::new();
    let acks = loop {
        match alice.recv().await {
            ServerMessage::Event { events: more } => events.extend(more),
            ServerMessage::Ack { edits } => break edits,
            other => panic!("unexpected {other:?}"),
        }
    };
    let seqs: Vec<(u64, Option<u64>)> = events
        .iter()
        .map(|e| (e.sequence_num, e.client_seq))
        .collect();
    assert_eq!(seqs, vec![(1, Some(1)), (2, Some(2)), (3, Some(3))]);
    assert_eq!(
        acks,
        (1..=3)
            .map(|s| Ack {
                client_seq: s,
                sequence_num: s,
                duplicate: false
            })
            .collect::<Vec<_>>()
    );
    // The same holds with another subscriber's events going on.
    let (mut bob, _) = Ws::open(&server, "order", "bob").await;
    for round in 0..5u64 {
        let base = 3 + 2 * round;
        assert_eq!(
            order(
                &mut bob,
                round + 1,
                base,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": round}])
            )
            .await,
            base + 1
        );
        alice
            .submit(vec![edit(
                4 + round,
                base + 1,
                Operation::Update,
                json!([{"op": "replace", "path": "/n", "value": round}]),
            )])
            .await;
        let (events, answer) = alice.answer().await;
        let acks = expect_ack(answer);
        assert_eq!(acks[0].sequence_num, base + 2);
        // Bob's event, then alice's own, both before the ack.
        let seqs: Vec<u64> = events.iter().map(|e| e.sequence_num).collect();
        assert_eq!(seqs, vec![base + 1, base + 2]);
    }
}

#[tokio::test]
async fn a_resend_on_a_new_connection_is_acknowledged_as_a_duplicate() {
    let server = TestServer::start().await;
    let add = |v: &str| json!([{"op": "add", "path": "/log/-", "value": v}]);
    let first = vec![
        edit(
            1,
            0,
            Operation::Create,
            json!([{"op": "add", "path": "", "value": {"log": []}}]),
        ),
        edit(2, 0, Operation::Update, add("alice-2")),
    ];
    let (mut alice, _) = Ws::open(&server, "resend", "alice").await;
    alice.submit(first.clone()).await;
    let (_, answer) = alice.answer().await;
    assert_eq!(
        expect_ack(answer)
            .iter()
            .map(|a| (a.client_seq, a.sequence_num, a.duplicate))
            .collect::<Vec<_>>(),
        vec![(1, 1, false), (2, 2, false)]
    );
    alice.close().await;

    let (mut bob, _) = Ws::open(&server, "resend", "bob").await;
    assert_eq!(
        order(&mut bob, 1, 2, Operation::Update, add("bob-1")).await,
        3
    );
    let before = document(&server, "resend").await;

    // Alice never saw her acks (say): she reconnects and resends the same edits.
    let (mut alice, head) = Ws::open(&server, "resend", "alice").await;
    assert_eq!(head, 3);
    alice.submit(first.clone()).await;
    let (events, answer) = alice.answer().await;
    assert!(events.is_empty(), "nothing was ordered again: {events:?}");
    assert_eq!(
        expect_ack(answer),
        vec![
            Ack {
                client_seq: 1,
                sequence_num: 1,
                duplicate: true
            },
            Ack {
                client_seq: 2,
                sequence_num: 2,
                duplicate: true
            },
        ]
    );
    assert_eq!(alice.ping(1).await, Some(3), "the head did not move");
    assert_eq!(document(&server, "resend").await, before);
    // Bob saw nothing new either.
    assert!(bob.silent_for(Duration::from_millis(200)).await);

    // A duplicate followed by a new edit on the old base: the duplicate is acked, the new edit
    // is stale because of bob's #3 (8.3 examples).
    alice
        .submit(vec![
            edit(2, 0, Operation::Update, add("alice-2")),
            edit(3, 0, Operation::Update, add("alice-3")),
        ])
        .await;
    let (events, answer) = alice.answer().await;
    assert!(events.is_empty());
    assert_eq!(
        expect_ack(answer),
        vec![Ack {
            client_seq: 2,
            sequence_num: 2,
            duplicate: true
        }]
    );
    expect_reject(alice.recv().await, 3, ErrorCode::StaleBase, 3);

    // Rebased on #3 it goes through, and a resend of it is a duplicate of #4.
    assert_eq!(
        order(&mut alice, 3, 3, Operation::Update, add("alice-3")).await,
        4
    );
    alice
        .submit(vec![edit(3, 3, Operation::Update, add("alice-3"))])
        .await;
    let (events, answer) = alice.answer().await;
    assert!(events.is_empty());
    assert_eq!(
        expect_ack(answer),
        vec![Ack {
            client_seq: 3,
            sequence_num: 4,
            duplicate: true
        }]
    );
    let after = document(&server, "resend").await;
    assert_eq!(after["sequenceNum"], 4);
    assert_eq!(
        after["document"],
        json!({"log": ["alice-2", "bob-1", "alice-3"]}),
        "every edit applied exactly once"
    );
}

#[tokio::test]
async fn a_stale_base_is_refused_and_the_rebased_edit_accepted() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "stale", "alice").await;
    let (mut bob, _) = Ws::open(&server, "stale", "bob").await;
    let set = |k: &str, v: u64| json!([{"op": "add", "path": format!("/{k}"), "value": v}]);
    order(
        &mut alice,
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {}}]),
    )
    .await;
    assert_eq!(
        order(&mut bob, 1, 1, Operation::Update, set("bob", 1)).await,
        2
    );

    // Alice edits against #1 without having seen #2.
    alice
        .submit(vec![edit(2, 1, Operation::Update, set("alice", 2))])
        .await;
    let (events, answer) = alice.answer().await;
    // Before a reject with headSeq h, every live event up to h was sent (8.2).
    assert_eq!(
        events.iter().map(|e| e.sequence_num).collect::<Vec<_>>(),
        vec![2]
    );
    expect_reject(answer, 2, ErrorCode::StaleBase, 2);
    assert_eq!(alice.ping(1).await, Some(2), "nothing was stored");

    // Same clientSeq, new base: accepted.
    assert_eq!(
        order(&mut alice, 2, 2, Operation::Update, set("alice", 2)).await,
        3
    );

    // An HTTP write makes in-flight edits stale too (8.4).
    assert_eq!(put(&server, "stale", &json!({"http": true})).await, 4);
    alice
        .submit(vec![edit(3, 3, Operation::Update, set("alice", 3))])
        .await;
    let (_, answer) = alice.answer().await;
    expect_reject(answer, 3, ErrorCode::StaleBase, 4);
    assert_eq!(
        order(&mut alice, 3, 4, Operation::Update, set("alice", 3)).await,
        5
    );
    let snapshot = document(&server, "stale").await;
    assert_eq!(snapshot["sequenceNum"], 5);
    assert_eq!(snapshot["document"], json!({"http": true, "alice": 3}));
}

#[tokio::test]
async fn impossible_sequence_numbers_are_refused_with_invalid_sequence() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "seq", "alice").await;
    let set = |v: u64| json!([{"op": "replace", "path": "/n", "value": v}]);
    order(
        &mut alice,
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {"n": 0}}]),
    )
    .await;
    // clientSeqs may have gaps: 5 after 1.
    assert_eq!(order(&mut alice, 5, 1, Operation::Update, set(5)).await, 2);
    let before = document(&server, "seq").await;

    // baseSeq ahead of the head.
    alice
        .submit(vec![edit(6, 3, Operation::Update, set(6))])
        .await;
    expect_reject(alice.answer().await.1, 6, ErrorCode::InvalidSequence, 2);
    // Below the highest ordered clientSeq (5), and never ordered itself.
    alice
        .submit(vec![edit(3, 2, Operation::Update, set(3))])
        .await;
    expect_reject(alice.answer().await.1, 3, ErrorCode::InvalidSequence, 2);
    // clientSeq 0.
    alice
        .submit(vec![edit(0, 2, Operation::Update, set(0))])
        .await;
    expect_reject(alice.answer().await.1, 0, ErrorCode::InvalidSequence, 2);
    // Mixed baseSeqs: the first edit is refused and nothing is ordered.
    alice
        .submit(vec![
            edit(6, 2, Operation::Update, set(6)),
            edit(7, 1, Operation::Update, set(7)),
        ])
        .await;
    expect_reject(alice.answer().await.1, 6, ErrorCode::InvalidSequence, 2);
    assert_eq!(alice.ping(1).await, Some(2));
    assert_eq!(document(&server, "seq").await, before, "nothing was stored");

    // Not increasing within a submit: the first is ordered, the second refused.
    alice
        .submit(vec![
            edit(7, 2, Operation::Update, set(7)),
            edit(6, 2, Operation::Update, set(6)),
        ])
        .await;
    let (events, answer) = alice.answer().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        expect_ack(answer),
        vec![Ack {
            client_seq: 7,
            sequence_num: 3,
            duplicate: false
        }]
    );
    expect_reject(alice.recv().await, 6, ErrorCode::InvalidSequence, 3);
    let after = document(&server, "seq").await;
    assert_eq!(after["sequenceNum"], 3);
    assert_eq!(after["document"], json!({"n": 7}));
}

#[tokio::test]
async fn pong_carries_the_head_and_the_nonce() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "pings", "alice").await;
    assert_eq!(alice.ping(17).await, Some(0));
    order(
        &mut alice,
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": 1}]),
    )
    .await;
    assert_eq!(alice.ping(18).await, Some(1));
    // A write alice did not make: the pong tells her the head moved.
    assert_eq!(put(&server, "pings", &json!(2)).await, 2);
    alice.send_text(r#"{"type":"ping"}"#).await;
    let pong = alice
        .recv_until(|m| matches!(m, ServerMessage::Pong { .. }))
        .await;
    assert_eq!(
        pong,
        ServerMessage::Pong {
            nonce: None,
            head_seq: Some(2),
            heads: None,
        }
    );
    assert_eq!(alice.ping(u64::from(u32::MAX) + 1).await, Some(2));
}

#[tokio::test]
async fn an_empty_submit_gets_an_empty_ack() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "empty", "alice").await;
    alice.send_text(r#"{"type":"submit","edits":[]}"#).await;
    assert_eq!(alice.recv().await, ServerMessage::Ack { edits: vec![] });
    order(
        &mut alice,
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {}}]),
    )
    .await;
    alice.submit(vec![]).await;
    assert_eq!(alice.recv().await, ServerMessage::Ack { edits: vec![] });
    assert_eq!(alice.ping(1).await, Some(1), "nothing was ordered");
}

#[tokio::test]
async fn a_reject_comes_after_every_live_event_up_to_its_head() {
    let server = TestServer::start().await;
    let (mut alice, _) = Ws::open(&server, "race", "alice").await;
    let (mut bob, _) = Ws::open(&server, "race", "bob").await;
    let mut head = order(
        &mut alice,
        1,
        0,
        Operation::Create,
        json!([{"op": "add", "path": "", "value": {"n": 0}}]),
    )
    .await;
    // What each connection has been sent so far (alice saw #1 before her ack).
    let mut seen = [head, 0];
    let (mut rejects, mut seq) = (0, 1);
    // Both submit against the same head at once: one is ordered, the other is stale, and the
    // stale one must have been sent the winner's event before its reject (8.2).
    for round in 0..60u64 {
        seq += 1;
        let patch = json!([{"op": "replace", "path": "/n", "value": round}]);
        let submit = |client_seq| eventsync::ClientMessage::Submit {
            edits: vec![edit(client_seq, head, Operation::Update, patch.clone())],
        };
        let (a, b) = (submit(seq), submit(seq));
        tokio::join!(alice.send(&a), bob.send(&b));
        let (answer_a, answer_b) = tokio::join!(alice.answer(), bob.answer());
        let mut accepted = 0;
        for (i, (events, answer)) in [answer_a, answer_b].into_iter().enumerate() {
            if let Some(last) = events.last() {
                assert_eq!(
                    events.first().unwrap().sequence_num,
                    seen[i] + 1,
                    "gapless live stream"
                );
                seen[i] = last.sequence_num;
            }
            match answer {
                ServerMessage::Ack { edits } => {
                    accepted += 1;
                    assert!(seen[i] >= edits[0].sequence_num, "event before ack");
                    head = edits[0].sequence_num;
                }
                ServerMessage::Reject {
                    code: ErrorCode::StaleBase,
                    head_seq,
                    ..
                } => {
                    rejects += 1;
                    assert!(
                        seen[i] >= head_seq,
                        "round {round}: reject with headSeq {head_seq} before event {head_seq} \
                         (connection {i} was sent up to {})",
                        seen[i]
                    );
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert!(accepted >= 1, "round {round}: one of the two is ordered");
        // Bring both connections to the head before the next round.
        for (i, ws) in [&mut alice, &mut bob].into_iter().enumerate() {
            while seen[i] < head {
                match ws.recv().await {
                    ServerMessage::Event { events } => {
                        assert_eq!(events[0].sequence_num, seen[i] + 1);
                        seen[i] = events.last().unwrap().sequence_num;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    assert!(rejects > 0, "the race happened at least once");
}
