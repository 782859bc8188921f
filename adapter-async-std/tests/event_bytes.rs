//! An application that does not read the event stream costs at most
//! `event_capacity_bytes` of events: the rest are dropped and counted.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use ringmesh::{Config, Event, Identity, MessagingEvent};
use ringmesh_async_std::{AdapterConfig, start};

fn config(i: u8) -> AdapterConfig {
    AdapterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        Config::lan(),
        Identity::from_secret_bytes([i; 32]),
        u64::from(i),
    )
}

#[test]
fn unread_events_are_bounded_by_bytes_and_drops_are_counted() {
    async_std::task::block_on(async {
        let (a, _a_events, a_driver) = start(config(31)).expect("a starts");
        let mut b_config = config(32);
        b_config.node.session.max_frame_len = 64 * 1024;
        b_config.event_capacity_bytes = b_config.min_event_capacity_bytes() + 1024;
        let cap = b_config.event_capacity_bytes;
        let (b, mut b_events, b_driver) = start(b_config).expect("b starts");
        let a_task = async_std::task::spawn(a_driver);
        let b_task = async_std::task::spawn(b_driver);
        a.connect(b.local_addr(), Some(b.node_id()))
            .await
            .expect("connected");
        // 40 messages of 32 KiB: about two fit in b's stream.
        for _ in 0..40 {
            a.send(b.node_id(), vec![7u8; 32 * 1024])
                .await
                .expect("sent");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while b_events.dropped() < 35 {
            assert!(
                Instant::now() < deadline,
                "only {} dropped",
                b_events.dropped()
            );
            async_std::task::sleep(Duration::from_millis(10)).await;
        }
        // The last few messages may still be arriving while the buffer is
        // read (each read makes room for one more): the bound holds at
        // every moment, which is what is checked, not the sum read.
        let mut held = 0;
        let mut messages = 0;
        loop {
            let queued = b_events.queued_bytes();
            assert!(queued <= cap, "{queued} bytes held, cap {cap}");
            held = held.max(queued);
            let Some(Some(event)) = futures_lite::future::poll_once(b_events.next()).await else {
                break;
            };
            messages += usize::from(matches!(
                event,
                Event::Messaging(MessagingEvent::Direct { .. })
            ));
        }
        // Read from now on, the rest (if still on the way) is delivered:
        // every message was either held or dropped.
        while messages as u64 + b_events.dropped() < 40 {
            assert!(Instant::now() < deadline, "{messages} held");
            if let Ok(Some(Event::Messaging(MessagingEvent::Direct { .. }))) =
                async_std::future::timeout(Duration::from_millis(100), b_events.next()).await
            {
                messages += 1;
            }
        }
        assert_eq!(messages as u64 + b_events.dropped(), 40);
        assert_eq!(b_events.queued_bytes(), 0);
        eprintln!(
            "held {messages} messages (at most {held} bytes at once, cap {cap}), dropped {}",
            b_events.dropped()
        );
        a.shutdown().await;
        b.shutdown().await;
        a_task.await;
        b_task.await;
    });
}
