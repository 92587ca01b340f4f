//! The serde shapes of inputs and effects: `type` tags in snake case, as the Pavilion's (what
//! replay scripts and drivers' logs hold).

use crowdcore::pavilion::{self, EffectKind as PoolKind};
use crowdcore::retainer::{Effect, EffectKind, Input, PingKind, WorkerNotice, WorkerRef};
use crowdcore::{
    AssignmentId, EffectId, HitId, ReservationId, SessionId, TemplateId, Timestamp, WorkerId,
};
use serde_json::json;

fn input(value: serde_json::Value) -> Input {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"))
}

#[test]
fn inputs_read_as_documented() {
    assert_eq!(
        input(
            json!({"type": "make_reservation", "reservation": "R1", "template": "T",
            "foreign_id": "F1", "payload": {"page": 2}, "start_at_ms": 5000, "needed": 2})
        ),
        Input::MakeReservation {
            reservation: ReservationId::new("R1"),
            template: TemplateId::new("T"),
            foreign_id: "F1".into(),
            payload: json!({"page": 2}),
            start_at: Timestamp::from_millis(5000),
            needed: 2,
        }
    );
    assert_eq!(
        input(json!({"type": "ping", "assignment": "A1", "kind": "working"})),
        Input::Ping {
            assignment: AssignmentId::new("A1"),
            kind: PingKind::Working,
        }
    );
    assert_eq!(
        input(json!({"type": "ping", "assignment": "A1"})),
        Input::Ping {
            assignment: AssignmentId::new("A1"),
            kind: PingKind::Waiting,
        }
    );
    assert_eq!(
        input(json!({"type": "hire_posted", "hire": "s/T/2", "hit": "H1", "slots": 3})),
        Input::HirePosted {
            hire: EffectId::new(SessionId::new("s/T"), 2),
            hit: HitId::new("H1"),
            slots: 3,
        }
    );
    assert_eq!(
        input(json!({"type": "finish_all"})),
        Input::FinishAll { template: None }
    );
    for tag in ["invoke", "cancel", "finish", "unfinish"] {
        let i = input(json!({"type": tag, "reservation": "R1"}));
        assert_eq!(serde_json::to_value(&i).unwrap()["type"], tag);
    }
    let spec = serde_json::to_value(crate::support::spec(50)).unwrap();
    let registered = input(
        json!({"type": "register_template", "template": "T", "spec": spec,
        "pool": {"fixed": 4}, "budget_cents": 1000}),
    );
    assert!(matches!(
        registered,
        Input::RegisterTemplate {
            budget_cents: Some(1000),
            ..
        }
    ));
    assert!(
        serde_json::from_value::<Input>(json!({"type": "invoke", "reservation": "R1", "x": 1}))
            .is_err(),
        "unknown fields are refused"
    );
}

#[test]
fn effects_write_as_documented() {
    let route = Effect {
        at: Timestamp::from_millis(7),
        id: EffectId::new(SessionId::new("s/T"), 4),
        kind: EffectKind::Route {
            template: TemplateId::new("T"),
            reservation: ReservationId::new("R1"),
            worker: WorkerId::new("W1"),
            assignment: AssignmentId::new("A1"),
            task: "F1".into(),
            payload: json!(null),
        },
    };
    assert_eq!(
        serde_json::to_value(&route).unwrap(),
        json!({"at_ms": 7, "id": "s/T/4", "type": "route", "template": "T",
            "reservation": "R1", "worker": "W1", "assignment": "A1", "task": "F1",
            "payload": null})
    );
    let hire = Effect {
        at: Timestamp::from_millis(1),
        id: EffectId::new(SessionId::new("s/T"), 2),
        kind: EffectKind::Pool {
            template: TemplateId::new("T"),
            effect: PoolKind::Hire { count: 3 },
        },
    };
    assert_eq!(
        serde_json::to_value(&hire).unwrap(),
        json!({"at_ms": 1, "id": "s/T/2", "type": "pool", "template": "T",
            "effect": {"type": "hire", "count": 3}})
    );
    let (template, as_pavilion) = hire.pool_effect().unwrap();
    assert_eq!(template.as_str(), "T");
    assert_eq!(
        as_pavilion,
        pavilion::Effect {
            at: hire.at,
            id: hire.id.clone(),
            kind: PoolKind::Hire { count: 3 },
        }
    );
    assert!(route.pool_effect().is_none());
    let notify = Effect {
        at: Timestamp::from_millis(9),
        id: EffectId::new(SessionId::new("s"), 1),
        kind: EffectKind::NotifyWorkers {
            template: TemplateId::new("T"),
            reservation: ReservationId::new("R1"),
            reason: WorkerNotice::Precruit,
            start_at: Timestamp::from_millis(20),
            workers: vec![WorkerRef {
                worker: WorkerId::new("W1"),
                assignment: AssignmentId::new("A1"),
            }],
        },
    };
    let value = serde_json::to_value(&notify).unwrap();
    assert_eq!(
        value,
        json!({"at_ms": 9, "id": "s/1", "type": "notify_workers", "template": "T",
            "reservation": "R1", "reason": "precruit", "start_at_ms": 20,
            "workers": [{"worker": "W1", "assignment": "A1"}]})
    );
    for e in [route, hire, notify] {
        let back: Effect = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
