//! Push notifications through the fake SQS queue: the notification settings of every HIT type,
//! every event of a batched message handed over, a message kept when the hand-over fails and
//! delivered again after its visibility timeout, SQS faults, and the driver's graceful stop.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crowdcore::clock::VirtualClock;
use crowdcore::platform::{AssignmentStatus, AssignmentUpdate, Platform};
use crowdcore_mturk::{NOTIFIED_EVENTS, NotificationReader, PumpStats};
use serde_json::json;

use crate::fake::{DEFAULT_VISIBILITY_S, FakeMturk};
use crate::{T0, config, key, platform_with, push_config, reader_with, spec};

/// (assignment, status) of an update.
type Seen = (String, AssignmentStatus);

fn seen(u: &AssignmentUpdate) -> Seen {
    (u.assignment.to_string(), u.status)
}

/// What the fake wrote, as the updates it should become (HIT events have none).
fn expected(fake: &FakeMturk) -> Vec<Seen> {
    fake.emitted()
        .iter()
        .filter_map(|e| {
            let status = match e["EventType"].as_str()? {
                "AssignmentSubmitted" => AssignmentStatus::Submitted,
                "AssignmentReturned" => AssignmentStatus::Returned,
                "AssignmentAbandoned" => AssignmentStatus::Abandoned,
                "AssignmentApproved" => AssignmentStatus::Approved,
                "AssignmentRejected" => AssignmentStatus::Rejected,
                _ => return None,
            };
            Some((e["AssignmentId"].as_str()?.to_owned(), status))
        })
        .collect()
}

async fn push_setup() -> (
    VirtualClock,
    FakeMturk,
    Arc<crowdcore_mturk::MturkPlatform>,
    NotificationReader,
) {
    let clock = VirtualClock::new(T0);
    let fake = FakeMturk::start(Arc::new(clock.clone()), 100_000).await;
    let config = push_config(config(&fake), &fake);
    let platform = Arc::new(platform_with(config.clone()).await);
    let reader = reader_with(&config).await;
    (clock, fake, platform, reader)
}

/// Workers on one HIT of `slots`: `submit` of them submit, `give_back` return, the rest hold.
async fn crowd(
    fake: &FakeMturk,
    platform: &crowdcore_mturk::MturkPlatform,
    seq: u64,
    slots: u32,
    submit: usize,
    give_back: usize,
) -> Vec<String> {
    let hit = platform
        .post(&spec(), slots, &key("push", seq))
        .await
        .expect("post");
    let mut held = Vec::new();
    for i in 0..slots as usize {
        let a = fake
            .accept(&format!("W{seq}-{i}"), hit.as_str())
            .expect("accept");
        if i < submit {
            fake.submit(&a, "answer").expect("submit");
        } else if i < submit + give_back {
            fake.return_assignment(&a).expect("return");
        }
        held.push(a);
    }
    held
}

#[tokio::test]
async fn every_hit_type_notifies_the_queue_before_its_first_hit() {
    let (_clock, fake, platform, _reader) = push_setup().await;
    assert!(platform.capabilities().push_notifications);
    let polled = platform_with(config(&fake)).await;
    assert!(!polled.capabilities().push_notifications);

    platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    platform.post(&spec(), 3, &key("s", 2)).await.unwrap();
    let mut other = spec();
    other.title = "Another task".into();
    platform.post(&other, 1, &key("s", 3)).await.unwrap();

    let settings = fake.requests("UpdateNotificationSettings");
    assert_eq!(settings.len(), 2, "once per HIT type: {settings:?}");
    let types: HashSet<_> = settings
        .iter()
        .map(|b| b["HITTypeId"].to_string())
        .collect();
    assert_eq!(types.len(), 2);
    for body in &settings {
        assert_eq!(body["Active"], json!(true));
        assert_eq!(
            body["Notification"],
            json!({
                "Destination": fake.queue_url(),
                "Transport": "SQS",
                "Version": "2014-08-15",
                "EventTypes": NOTIFIED_EVENTS,
            })
        );
    }
    // Each type's settings go out before its first HIT.
    let ops = fake.operations();
    let first = |op: &str| ops.iter().position(|o| o == op).unwrap();
    assert!(first("UpdateNotificationSettings") < first("CreateHITWithHITType"));
    assert_eq!(fake.requests("ListAssignmentsForHIT").len(), 0);
}

#[tokio::test]
async fn a_failed_notification_setting_posts_no_hit() {
    let (_clock, fake, platform, _reader) = push_setup().await;
    fake.script(
        "UpdateNotificationSettings",
        400,
        json!({"__type": "RequestError", "Message": "The queue refused MTurk", "TurkErrorCode": "AWS.MechanicalTurk.InvalidParameterValue"}),
    );
    assert!(platform.post(&spec(), 2, &key("s", 1)).await.is_err());
    assert!(fake.hits().is_empty(), "no HIT without its notifications");
    platform.post(&spec(), 2, &key("s", 1)).await.unwrap();
    assert_eq!(fake.requests("UpdateNotificationSettings").len(), 2);
    assert_eq!(fake.hits().len(), 1);
}

#[tokio::test]
async fn every_event_of_a_batched_message_is_handed_over() {
    let (clock, fake, platform, reader) = push_setup().await;
    // Two submit, one returns, one holds until the assignment duration (1 h) runs out.
    let held = crowd(&fake, &platform, 1, 4, 2, 1).await;
    clock.advance(3_600_000);
    fake.abandon_overdue();
    fake.flush_events();
    let messages = fake
        .world()
        .queue
        .iter()
        .map(|m| m.events)
        .collect::<Vec<_>>();
    assert_eq!(messages, vec![3, 1], "batched three to a message");

    let mut got = Vec::new();
    let stats = reader
        .pump(&mut async |u: &[AssignmentUpdate]| {
            got.extend_from_slice(u);
            Ok::<(), String>(())
        })
        .await
        .expect("receive");
    assert_eq!(
        stats,
        PumpStats {
            received: 2,
            events: 4,
            updates: 4,
            deleted: 2,
            kept: 0,
            malformed: 0,
            refused: 0,
            dropped: 0,
        }
    );
    assert_eq!(got.iter().map(seen).collect::<Vec<_>>(), expected(&fake));
    assert_eq!(
        got.iter().map(seen).collect::<Vec<_>>(),
        vec![
            (held[0].clone(), AssignmentStatus::Submitted),
            (held[1].clone(), AssignmentStatus::Submitted),
            (held[2].clone(), AssignmentStatus::Returned),
            (held[3].clone(), AssignmentStatus::Abandoned),
        ]
    );
    // Times are MTurk's: the abandonment at the assignment's deadline.
    assert_eq!(got[3].at, T0.plus_millis(3_600_000));
    assert!(got.iter().all(|u| u.hit == got[0].hit));
    assert_eq!(fake.undelivered(), (0, 0));
    assert_eq!(fake.requests("DeleteMessage").len(), 2);

    // Approvals, rejections and the HIT's expiry come through too; the expiry has no update.
    platform
        .approve(&got[0].assignment, &key("push", 90))
        .await
        .unwrap();
    platform
        .reject(&got[1].assignment, "no", &key("push", 91))
        .await
        .unwrap();
    platform.expire(&got[0].hit).await.unwrap();
    let mut more = Vec::new();
    let stats = reader
        .pump(&mut async |u: &[AssignmentUpdate]| {
            more.extend_from_slice(u);
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    assert_eq!((stats.events, stats.updates, stats.deleted), (3, 2, 1));
    assert_eq!(
        more.iter().map(seen).collect::<Vec<_>>(),
        vec![
            (held[0].clone(), AssignmentStatus::Approved),
            (held[1].clone(), AssignmentStatus::Rejected),
        ]
    );
}

#[tokio::test]
async fn a_message_whose_hand_over_failed_stays_and_comes_again() {
    let (clock, fake, platform, reader) = push_setup().await;
    crowd(&fake, &platform, 1, 3, 2, 1).await;
    let mut refused = 0;
    let stats = reader
        .pump(&mut async |_: &[AssignmentUpdate]| {
            refused += 1;
            Err("the engine is down")
        })
        .await
        .unwrap();
    assert_eq!(refused, 1, "one message of three events");
    assert_eq!((stats.received, stats.kept, stats.deleted), (1, 1, 0));
    assert!(fake.requests("DeleteMessage").is_empty());
    assert_eq!(fake.undelivered(), (1, 0));

    // Hidden for its visibility timeout…
    let mut got = Vec::new();
    let mut sink = async |u: &[AssignmentUpdate]| {
        got.extend_from_slice(u);
        Ok::<(), String>(())
    };
    let stats = reader.pump(&mut sink).await.unwrap();
    assert_eq!(stats.received, 0);
    clock.advance(DEFAULT_VISIBILITY_S * 1000 - 1);
    assert_eq!(reader.pump(&mut sink).await.unwrap().received, 0);
    // …then delivered again, handed over, and deleted.
    clock.advance(1);
    let stats = reader.pump(&mut sink).await.unwrap();
    assert_eq!((stats.received, stats.updates, stats.deleted), (1, 3, 1));
    assert_eq!(got.iter().map(seen).collect::<Vec<_>>(), expected(&fake));
    assert_eq!(fake.undelivered(), (0, 0));
    let m = fake.world().queue[0].clone();
    assert_eq!(m.receipts.len(), 2, "delivered twice");
}

#[tokio::test]
async fn a_released_message_comes_again_at_once() {
    let (_clock, fake, platform, reader) = push_setup().await;
    crowd(&fake, &platform, 1, 1, 1, 0).await;
    let first = reader.receive().await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(reader.receive().await.unwrap().is_empty(), "hidden");
    reader.release(&first[0]).await.unwrap();
    let again = reader.receive().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].updates, first[0].updates);
    // The first receipt is stale but names the message: deleting with it works, as on SQS.
    reader.delete(&again[0]).await.unwrap();
    assert_eq!(fake.undelivered(), (0, 0));
}

#[tokio::test]
async fn malformed_messages_are_left_to_the_queue() {
    let (_clock, fake, platform, reader) = push_setup().await;
    crowd(&fake, &platform, 1, 1, 1, 0).await;
    fake.flush_events();
    {
        let mut w = fake.world();
        let mut junk = w.queue[0].clone();
        junk.id = "MJUNK".into();
        junk.body = "{\"not\": \"mturk\"}".into();
        w.queue.push(junk);
    }
    let mut got = Vec::new();
    let stats = reader
        .pump(&mut async |u: &[AssignmentUpdate]| {
            got.extend_from_slice(u);
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    assert_eq!((stats.received, stats.malformed, stats.deleted), (2, 1, 1));
    assert_eq!(got.len(), 1);
    assert_eq!(
        fake.undelivered(),
        (1, 0),
        "the junk stays for the redrive policy"
    );
}

/// Pumps until everything the fake wrote is handed over, moving the clock past visibility
/// timeouts when only hidden messages are left. Returns the updates in hand-over order.
async fn drain(clock: &VirtualClock, fake: &FakeMturk, reader: &NotificationReader) -> Vec<Seen> {
    let mut got = Vec::new();
    let mut sink = async |u: &[AssignmentUpdate]| {
        got.extend(u.iter().map(seen));
        Ok::<(), String>(())
    };
    for _ in 0..2_000 {
        match reader.pump(&mut sink).await {
            Ok(stats) if stats.received > 0 => continue,
            Ok(_) if fake.undelivered() == (0, 0) => return got,
            Ok(_) => clock.advance(DEFAULT_VISIBILITY_S * 1000),
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
    }
    panic!("the queue never drained: {:?}", fake.undelivered());
}

#[tokio::test]
async fn sqs_faults_lose_no_event() {
    let (mut redelivered, mut failed) = (0, 0);
    for seed in 1..=4 {
        let (clock, fake, platform, _) = push_setup().await;
        // One message per receive: more calls, more faults.
        let mut config = push_config(config(&fake), &fake);
        let n = config
            .notifications
            .as_mut()
            .expect("push_config sets notifications");
        n.max_messages = 1;
        let reader = reader_with(&config).await;
        for seq in 1..=4 {
            crowd(&fake, &platform, seq, 5, 3, 1).await;
        }
        fake.set_sqs_faults(seed, 0.3);
        let got = drain(&clock, &fake, &reader).await;
        let counts = fake.sqs_fault_counts();
        failed += counts.throttled + counts.server_errors;
        redelivered += counts.redelivered;
        // Every event at least once, nothing that was not written.
        let want: HashSet<Seen> = expected(&fake).into_iter().collect();
        let have: HashSet<Seen> = got.iter().cloned().collect();
        assert_eq!(have, want, "seed {seed}");
        assert_eq!(want.len(), 16);
    }
    assert!(failed > 3, "{failed} throttled or failed calls");
    assert!(redelivered > 0, "no message was delivered twice");
}

#[tokio::test]
async fn the_driver_runs_until_stopped() {
    let (_clock, fake, platform, _) = push_setup().await;
    let mut config = push_config(config(&fake), &fake);
    let n = config
        .notifications
        .as_mut()
        .expect("push_config sets notifications");
    n.wait_time_s = 20; // the fake holds a long poll for 200 ms at most
    let reader = reader_with(&config).await;
    crowd(&fake, &platform, 1, 5, 4, 1).await;
    fake.set_sqs_faults(7, 0.3);
    let want = expected(&fake).len();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stop_tx = Some(stop_tx);
    let mut got = Vec::new();
    let sink = async |u: &[AssignmentUpdate]| {
        got.extend(u.iter().map(seen));
        if got.len() >= want
            && let Some(tx) = stop_tx.take()
        {
            let _ = tx.send(());
        }
        Ok::<(), String>(())
    };
    let stop = async move {
        let _ = stop_rx.await;
    };
    let totals = tokio::time::timeout(
        Duration::from_secs(60),
        reader.run(sink, stop, Duration::from_millis(50)),
    )
    .await
    .expect("the driver stops when told");
    assert_eq!(totals.updates, got.len(), "{totals:?}");
    assert_eq!(totals.deleted + totals.kept, totals.received);
    let have: HashSet<Seen> = got.iter().cloned().collect();
    assert_eq!(have, expected(&fake).into_iter().collect());
}
