//! The scheduler's order and pacing, on tokio's paused clock.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

fn budgets(writes: u32, per: Duration) -> Budgets {
    Budgets {
        app_tenant_writes: Budget::new(writes, per),
        tenant_writes: Budget::new(writes * 10, per),
        app_writes: Budget::new(writes * 10, per),
        app_tenant_read_units: Budget::new(1000, per),
        end_reserve: 0.0,
        inline_wait: Duration::from_secs(1),
    }
}

fn app(name: &str) -> AppInTenant {
    AppInTenant::new("tenant", name)
}

fn ticket<'a>(who: &'a AppInTenant, purpose: &'a Purpose) -> Ticket<'a> {
    Ticket {
        who,
        limit: Limit::Write,
        units: 1.0,
        purpose,
        kept: None,
        longest_wait: Duration::from_secs(600),
    }
}

#[tokio::test(start_paused = true)]
async fn writes_are_paced_to_the_budget_without_a_refusal() {
    let scheduler = Scheduler::new(budgets(10, Duration::from_secs(10)), SECOND, MINUTE);
    let who = app("a");
    let purpose = Purpose::waiting(Class::Issue, "ns");
    let started = Instant::now();
    for _ in 0..20 {
        drop(scheduler.admit(ticket(&who, &purpose)).await.unwrap());
    }
    // Ten at once, then one a second.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(9), "{took:?}");
    assert!(took <= Duration::from_secs(11), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_start_soon_is_parked_and_keeps_its_place() {
    let scheduler = Scheduler::new(budgets(1, Duration::from_secs(10)), SECOND, MINUTE);
    let who = app("a");
    let first = Purpose::new(Class::Issue, "ns", "lease-1");
    let second = Purpose::new(Class::Issue, "ns", "lease-2");
    drop(scheduler.admit(ticket(&who, &first)).await.unwrap());
    let parked = scheduler.admit(ticket(&who, &second)).await.err().unwrap();
    assert!(parked.ready_in > Duration::from_secs(5), "{parked:?}");
    assert!(!parked.refused);
    assert_eq!(scheduler.waiting(), 1);
    tokio::time::sleep(parked.ready_in).await;
    drop(scheduler.admit(ticket(&who, &second)).await.unwrap());
    assert_eq!(scheduler.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn ending_credentials_start_before_everything_waiting() {
    let scheduler = Scheduler::new(budgets(1, Duration::from_secs(5)), SECOND, MINUTE);
    let who = app("a");
    drop(
        scheduler
            .admit(ticket(&who, &Purpose::waiting(Class::Issue, "x")))
            .await
            .unwrap(),
    );
    // Five issues park, then an end arrives: its turn comes first.
    let issues: Vec<Purpose> = (0..5)
        .map(|n| Purpose::new(Class::Issue, "busy", format!("issue-{n}")))
        .collect();
    let mut issue_waits = Vec::new();
    for purpose in &issues {
        issue_waits.push(scheduler.admit(ticket(&who, purpose)).await.err().unwrap());
    }
    let end = Purpose::new(Class::End, "other", "end-1");
    let end_wait = scheduler.admit(ticket(&who, &end)).await.err().unwrap();
    assert!(
        end_wait.ready_in <= issue_waits[0].ready_in,
        "{end_wait:?} {issue_waits:?}"
    );
    tokio::time::sleep(Duration::from_millis(5100)).await;
    // The first issue comes back first, but the end took the token.
    assert!(scheduler.admit(ticket(&who, &issues[0])).await.is_err());
    drop(scheduler.admit(ticket(&who, &end)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn namespaces_take_turns_inside_a_class() {
    let scheduler = Scheduler::new(budgets(1, Duration::from_secs(5)), SECOND, MINUTE);
    let who = app("a");
    drop(
        scheduler
            .admit(ticket(&who, &Purpose::waiting(Class::Issue, "x")))
            .await
            .unwrap(),
    );
    let burst: Vec<Purpose> = (0..50)
        .map(|n| Purpose::new(Class::Issue, "burst", format!("b-{n}")))
        .collect();
    for purpose in &burst {
        assert!(scheduler.admit(ticket(&who, purpose)).await.is_err());
    }
    let single = Purpose::new(Class::Issue, "quiet", "q-1");
    let wait = scheduler.admit(ticket(&who, &single)).await.err().unwrap();
    // Behind the burst's first request only, not all fifty.
    assert!(wait.ready_in <= Duration::from_secs(11), "{wait:?}");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_pauses_the_scope_it_names_and_no_other_app() {
    let scheduler = Scheduler::new(budgets(100, Duration::from_secs(1)), SECOND, MINUTE);
    let throttled = app("throttled");
    let healthy = app("healthy");
    scheduler.observe(
        &throttled,
        Limit::Write,
        &Answer {
            status: 429,
            answered: true,
            retry_after: Some(Duration::from_secs(60)),
            throttle_scope: Some("Tenant_Application/Write/throttled/tenant"),
            limit_percentage: None,
        },
    );
    let end = Purpose::new(Class::End, "ns", "end-1");
    let parked = scheduler
        .admit(ticket(&throttled, &end))
        .await
        .err()
        .unwrap();
    assert!(parked.refused);
    assert!(parked.ready_in >= Duration::from_secs(59), "{parked:?}");
    let started = Instant::now();
    let other = Purpose::new(Class::End, "ns", "end-2");
    drop(scheduler.admit(ticket(&healthy, &other)).await.unwrap());
    assert!(started.elapsed() < Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn the_reserve_keeps_room_for_ending_credentials() {
    let mut budgets = budgets(10, Duration::from_secs(100));
    budgets.end_reserve = 0.2;
    let scheduler = Scheduler::new(budgets, SECOND, MINUTE);
    let who = app("a");
    let issue = Purpose::new(Class::Issue, "ns", "issue");
    for _ in 0..8 {
        drop(scheduler.admit(ticket(&who, &issue)).await.unwrap());
    }
    assert!(scheduler.admit(ticket(&who, &issue)).await.is_err());
    let end = Purpose::new(Class::End, "ns", "end");
    drop(scheduler.admit(ticket(&who, &end)).await.unwrap());
    drop(scheduler.admit(ticket(&who, &end)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn entras_percentage_slows_the_app_before_its_limit() {
    let scheduler = Scheduler::new(budgets(100, Duration::from_secs(1000)), SECOND, MINUTE);
    let who = app("a");
    let issue = Purpose::new(Class::Issue, "ns", "issue");
    drop(scheduler.admit(ticket(&who, &issue)).await.unwrap());
    scheduler.observe(
        &who,
        Limit::Write,
        &Answer {
            status: 204,
            answered: true,
            limit_percentage: Some(98.0),
            ..Answer::default()
        },
    );
    drop(scheduler.admit(ticket(&who, &issue)).await.unwrap());
    drop(scheduler.admit(ticket(&who, &issue)).await.unwrap());
    assert!(scheduler.admit(ticket(&who, &issue)).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_parked_request_whose_holder_never_comes_back_is_dropped() {
    let scheduler = Scheduler::new(budgets(1, Duration::from_secs(5)), SECOND, MINUTE);
    let who = app("a");
    drop(
        scheduler
            .admit(ticket(&who, &Purpose::waiting(Class::Issue, "x")))
            .await
            .unwrap(),
    );
    let gone = Purpose::new(Class::Issue, "ns", "deleted-lease");
    assert!(scheduler.admit(ticket(&who, &gone)).await.is_err());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let other = Purpose::waiting(Class::Issue, "ns");
    drop(scheduler.admit(ticket(&who, &other)).await.unwrap());
    assert_eq!(scheduler.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_app_has_at_most_a_few_requests_on_the_wire() {
    let scheduler = Scheduler::new(budgets(100, Duration::from_secs(1)), SECOND, MINUTE);
    let who = app("silent");
    let purpose = Purpose::waiting(Class::End, "ns");
    let mut on_the_wire = Vec::new();
    for _ in 0..MAX_IN_FLIGHT_PER_APP {
        on_the_wire.push(scheduler.admit(ticket(&who, &purpose)).await.unwrap());
    }
    let parked = Purpose::new(Class::End, "ns", "next");
    let waits = scheduler.admit(ticket(&who, &parked)).await;
    assert!(waits.is_err(), "a fifth request waits for an answer");
    let other = app("healthy");
    drop(scheduler.admit(ticket(&other, &purpose)).await.unwrap());
    on_the_wire.pop();
    drop(scheduler.admit(ticket(&who, &parked)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn grants_left_by_callers_who_never_came_back_do_not_block_the_wire() {
    let scheduler = Scheduler::new(budgets(2, Duration::from_secs(20)), SECOND, MINUTE);
    let who = app("a");
    let purpose = Purpose::waiting(Class::Issue, "ns");
    drop(scheduler.admit(ticket(&who, &purpose)).await.unwrap());
    drop(scheduler.admit(ticket(&who, &purpose)).await.unwrap());
    // Parked callers whose turns come while they are away (their leases were deleted).
    for n in 0..MAX_IN_FLIGHT_PER_APP {
        let gone = Purpose::new(Class::Issue, "ns", format!("gone-{n}"));
        assert!(scheduler.admit(ticket(&who, &gone)).await.is_err());
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let end = Purpose::new(Class::End, "ns", "end");
    drop(scheduler.admit(ticket(&who, &end)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn only_ends_spend_worker_time_waiting_for_their_turn() {
    // Two writes a second: the next token is half a second away.
    let scheduler = Scheduler::new(budgets(2, SECOND), SECOND, MINUTE);
    let who = app("a");
    let spent = Purpose::waiting(Class::Issue, "ns");
    drop(scheduler.admit(ticket(&who, &spent)).await.unwrap());
    drop(scheduler.admit(ticket(&who, &spent)).await.unwrap());
    let issue = Purpose::new(Class::Issue, "ns", "issue");
    let started = Instant::now();
    let parked = scheduler.admit(ticket(&who, &issue)).await.err().unwrap();
    assert!(
        started.elapsed() <= INLINE_WAIT_BELOW_END,
        "{:?}",
        started.elapsed()
    );
    assert!(parked.ready_in > INLINE_WAIT_BELOW_END, "{parked:?}");
    // An end waits in its worker: it goes ahead of the parked issue, and without a round trip.
    let end = Purpose::new(Class::End, "ns", "end");
    drop(scheduler.admit(ticket(&who, &end)).await.unwrap());
    assert!(started.elapsed() <= SECOND, "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn the_last_wire_slot_is_kept_for_ending_credentials() {
    let scheduler = Scheduler::new(budgets(100, SECOND), SECOND, MINUTE);
    let who = app("busy");
    let issue = Purpose::waiting(Class::Issue, "ns");
    let mut on_the_wire = Vec::new();
    for _ in 1..MAX_IN_FLIGHT_PER_APP {
        on_the_wire.push(scheduler.admit(ticket(&who, &issue)).await.unwrap());
    }
    let next_issue = Purpose::new(Class::Issue, "ns", "next-issue");
    assert!(
        scheduler.admit(ticket(&who, &next_issue)).await.is_err(),
        "an issue waits for an answer while the last slot is free"
    );
    let end = Purpose::new(Class::End, "ns", "end");
    on_the_wire.push(scheduler.admit(ticket(&who, &end)).await.unwrap());
    assert_eq!(on_the_wire.len() as u32, MAX_IN_FLIGHT_PER_APP);
}
