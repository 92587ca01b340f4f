//! The seed rules end to end, through the engine and the local marketplace: hires become
//! HITs, departures promote and hire as the rules say, and pay lands in the market's
//! earnings and in the engine's ledger.

use crowdcore::clock::Clock;
use crowdcore::engine::EngineEvent;
use crowdcore::local::LocalMarketplace;
use crowdcore::pavilion::{Departure, EffectKind, Phase, SeatState};
use crowdcore::platform::AssignmentStatus;
use crowdcore::{AssignmentId, Timestamp, WorkerId};

use crate::support::{Host, Op, at, check_done_once, fresh};

/// `worker` finds the oldest open HIT, accepts it and lands on its page.
async fn join(host: &mut Host, market: &LocalMarketplace, worker: &str) -> AssignmentId {
    let w = WorkerId::new(worker);
    let listing = market
        .available(&w)
        .into_iter()
        .next()
        .expect("work is listed");
    let a = market.accept(&w, &listing.hit).expect("accept");
    host.call(Op::Arrive(w, a.clone(), listing.hit))
        .await
        .expect("arrive");
    a
}

/// Lets time pass to `t`; every present page except the `silent` ones pings every 10 s.
async fn idle_until(host: &mut Host, t: Timestamp, silent: &[&AssignmentId]) {
    while host.clock.now() < t {
        let next = host.clock.now().plus_millis(10_000).min(t);
        host.run_until(next).await;
        let snapshot = host.engine().snapshot();
        let present = snapshot.waiting.iter().chain(&snapshot.active);
        let pinging: Vec<AssignmentId> = present
            .map(|s| s.assignment.clone())
            .filter(|a| !silent.contains(&a))
            .collect();
        for a in pinging {
            host.call(Op::Heartbeat(a)).await.expect("heartbeat");
        }
    }
}

/// The workers promoted since the last call.
fn promoted(host: &mut Host) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(event) = host.engine().poll_event() {
        if let EngineEvent::Effect(e) = event
            && let EffectKind::Promote { worker, .. } = e.kind
        {
            out.push(worker.to_string());
        }
    }
    out
}

fn queues(host: &mut Host) -> (Vec<String>, Vec<String>) {
    let s = host.engine().snapshot();
    let names =
        |v: &[crowdcore::pavilion::SeatView]| v.iter().map(|s| s.worker.to_string()).collect();
    (names(&s.active), names(&s.waiting))
}

/// The engine and the market agree on how many slots are open.
fn agree(host: &mut Host, market: &LocalMarketplace) {
    let listed: u32 = market
        .hits()
        .iter()
        .filter(|(_, _, _, expired)| !expired)
        .map(|(_, slots, taken, _)| slots - taken)
        .sum();
    assert_eq!(listed, host.engine().machine().open_slots());
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn submit(host: &mut Host, market: &LocalMarketplace, a: &AssignmentId, n: u32) {
    host.call(Op::Submit(a.clone(), n)).await.expect("submit");
    // Base pay approved the assignment already.
    assert_eq!(market.status(a), Some(AssignmentStatus::Approved));
}

async fn give_back(host: &mut Host, market: &LocalMarketplace, a: &AssignmentId) {
    host.call(Op::Return(a.clone())).await.expect("return");
    market.return_assignment(a).expect("return at the market");
}

#[tokio::test]
async fn the_seed_rules_end_to_end() {
    let (mut host, market, _store) = fresh().await;
    let earned = |w: &str| market.earnings(&WorkerId::new(w)).minor;

    // Start: one HIT with a slot for every seat (2 active + 2 waiting).
    host.call(Op::Start).await.unwrap();
    assert_eq!(market.hits().len(), 1);
    assert_eq!(market.hits()[0].1, 4);

    // Two workers present begin the task: both go straight to active.
    idle_until(&mut host, at(5), &[]).await;
    let w1 = join(&mut host, &market, "w1").await;
    assert_eq!(host.engine().machine().phase(), Phase::Recruiting);
    idle_until(&mut host, at(10), &[]).await;
    let w2 = join(&mut host, &market, "w2").await;
    assert_eq!(host.engine().machine().phase(), Phase::Running);
    assert_eq!(promoted(&mut host), strs(&["w1", "w2"]));
    idle_until(&mut host, at(15), &[]).await;
    let w3 = join(&mut host, &market, "w3").await;
    let w4 = join(&mut host, &market, "w4").await;
    assert_eq!(
        queues(&mut host),
        (strs(&["w1", "w2"]), strs(&["w3", "w4"]))
    );
    assert!(
        market.available(&WorkerId::new("w9")).is_empty(),
        "every slot is taken"
    );

    // Rule 2: an active worker submits ⇒ the oldest waiting worker is promoted, one is hired.
    idle_until(&mut host, at(75), &[]).await;
    submit(&mut host, &market, &w1, 3).await;
    assert_eq!(promoted(&mut host), strs(&["w3"]));
    assert_eq!(market.hits().len(), 2);
    assert_eq!(market.hits()[1].1, 1, "one slot hired");
    // 50 base + 5 s waiting at 6/min (0.5 ⇒ 1) + 65 s active at 12/min (13) + 3 × 5.
    assert_eq!(earned("w1"), 50 + 1 + 13 + 15);
    agree(&mut host, &market);

    // Rule 1: a waiting worker submits ⇒ one is hired.
    idle_until(&mut host, at(85), &[]).await;
    let w5 = join(&mut host, &market, "w5").await;
    assert_eq!(queues(&mut host).1, strs(&["w4", "w5"]));
    idle_until(&mut host, at(95), &[]).await;
    submit(&mut host, &market, &w5, 0).await;
    assert!(promoted(&mut host).is_empty());
    assert_eq!(market.hits().len(), 3);
    assert_eq!(earned("w5"), 50 + 1, "base + 10 s waiting");
    agree(&mut host, &market);

    // Rule 3: an active worker returns ⇒ the oldest waiting worker is promoted; the slot
    // re-opens on the market, so nobody is hired.
    idle_until(&mut host, at(105), &[]).await;
    give_back(&mut host, &market, &w2).await;
    assert_eq!(promoted(&mut host), strs(&["w4"]));
    assert_eq!(market.hits().len(), 3);
    assert_eq!(earned("w2"), 0);
    assert_eq!(queues(&mut host), (strs(&["w3", "w4"]), Vec::new()));
    agree(&mut host, &market);

    // The re-opened slot and the new HIT's slot fill the waiting queue.
    idle_until(&mut host, at(115), &[]).await;
    let w6 = join(&mut host, &market, "w6").await;
    let w7 = join(&mut host, &market, "w7").await;
    assert_eq!(queues(&mut host).1, strs(&["w6", "w7"]));

    // Rule 4: a waiting worker returns ⇒ nothing: no hire, no promotion.
    idle_until(&mut host, at(125), &[]).await;
    give_back(&mut host, &market, &w6).await;
    assert!(promoted(&mut host).is_empty());
    assert_eq!(market.hits().len(), 3);
    assert_eq!(queues(&mut host), (strs(&["w3", "w4"]), strs(&["w7"])));
    agree(&mut host, &market);

    // A return reported only by the platform reaches the engine through the observer.
    idle_until(&mut host, at(135), &[]).await;
    let w8 = join(&mut host, &market, "w8").await;
    market.return_assignment(&w8).unwrap();
    assert_eq!(host.seat(&w8), Some(SeatState::Waiting));
    idle_until(&mut host, at(150), &[&w7]).await;
    assert_eq!(host.seat(&w8), Some(SeatState::Left(Departure::Returned)));
    agree(&mut host, &market);

    // A page that goes silent times out. The worker still holds the slot on the market (until
    // they return it or its duration runs out), so the seat is hired again at once.
    idle_until(&mut host, at(180), &[&w7]).await;
    assert_eq!(host.seat(&w7), Some(SeatState::Left(Departure::TimedOut)));
    assert_eq!(market.hits().len(), 4);
    assert_eq!(market.hits()[3].1, 1);
    agree(&mut host, &market);

    // The silent worker gives the slot back on the market. The seat was hired again, so the
    // freed slot is surplus: nobody is hired, and the engine does not count it as open beyond
    // the targets.
    market.return_assignment(&w7).unwrap();
    idle_until(&mut host, at(195), &[]).await;
    assert_eq!(market.hits().len(), 4);
    agree(&mut host, &market);

    // A worker who takes a second seat is turned away and their page gives the slot back; the
    // next worker fills the seat, and the engine and the market still agree on open slots.
    while host.engine().poll_event().is_some() {}
    let w9 = join(&mut host, &market, "w9").await;
    let again = join(&mut host, &market, "w9").await;
    assert_eq!(host.seat(&w9), Some(SeatState::Waiting));
    assert_eq!(
        host.seat(&again),
        Some(SeatState::Left(Departure::TurnedAway))
    );
    let turned_away = std::iter::from_fn(|| host.engine().poll_event()).any(
        |e| matches!(e, EngineEvent::Effect(e) if matches!(e.kind, EffectKind::TurnAway { .. })),
    );
    assert!(turned_away);
    give_back(&mut host, &market, &again).await;
    let w10 = join(&mut host, &market, "w10").await;
    assert_eq!(queues(&mut host).1, strs(&["w9", "w10"]));
    agree(&mut host, &market);

    // Stop: everyone present is released and paid in full.
    idle_until(&mut host, at(200), &[]).await;
    host.call(Op::Stop).await.unwrap();
    host.settle().await;
    assert_eq!(host.engine().machine().phase(), Phase::Stopped);
    for a in [&w3, &w4, &w9, &w10] {
        assert_eq!(market.status(a), Some(AssignmentStatus::Approved));
    }
    // w3 waited 15 s → 75 s (60 s: 6 ¢), worked 75 s → 200 s (125 s: 25 ¢); w4 waited
    // 15 s → 105 s (90 s: 9 ¢), worked 105 s → 200 s (95 s: 19 ¢); w9 and w10 waited 5 s (1 ¢).
    assert_eq!(earned("w3"), 50 + 6 + 25);
    assert_eq!(earned("w4"), 50 + 9 + 19);
    assert_eq!(earned("w9"), 50 + 1);
    assert_eq!(earned("w10"), 50 + 1);
    for w in ["w2", "w6", "w7", "w8"] {
        assert_eq!(earned(w), 0, "{w} left without pay");
    }
    let ledger = host.engine().ledger().await.unwrap();
    assert!(ledger.iter().all(|e| e.paid));
    let paid: i64 = ledger.iter().map(|e| e.amount.minor).sum();
    assert_eq!(paid, market.spending().minor);
    assert_eq!(paid, 79 + 51 + 81 + 78 + 51 + 51);
    check_done_once(&mut host, &market).await;
}
