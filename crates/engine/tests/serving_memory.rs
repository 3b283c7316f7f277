//! The memory budget over real sockets (its own test binary: the budget is checked against this
//! process's resident size, which other tests running beside it would change).

use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use privinfer_engine::handshake::Reveal;
use privinfer_engine::{Outcome, ServerConfig};

mod common;
use common::{
    good_client_queued, reference, short, stalled_session, start_server_with, tiny_model,
};

#[test]
fn the_memory_budget_queues_sessions_that_do_not_fit_and_refuses_a_budget_below_one() {
    let model = tiny_model();
    let sm = privinfer_engine::ServerModel::new(&model, &Default::default()).unwrap();
    let session = sm.plan.predicted_session_memory(false);
    assert!(session > 0 && session < 1 << 30, "{session}");
    let idle = math::alloc::resident_bytes().unwrap_or(0);
    // Room for one session and a half: the second client waits until the first has finished.
    let config = ServerConfig {
        max_sessions: 4,
        memory_budget: Some(idle + session + session / 2),
        tcp: short(),
        ..ServerConfig::default()
    };
    let want = reference(&model);
    let (addr, server, _, stop, stats) = start_server_with(&model, Reveal::Logits, None, config);
    let held = stalled_session(addr);
    let waiting = thread::spawn({
        let model = model.clone();
        move || {
            let mut seen = Vec::new();
            let r = good_client_queued(addr, &model, None, &mut |q| seen.push(q.queued));
            (r, seen)
        }
    });
    thread::sleep(Duration::from_millis(300));
    assert_eq!(stats.get().queued, 1, "the second session waits for memory");
    drop(held);
    let (r, seen) = waiting.join().unwrap();
    assert_eq!(r.unwrap(), Outcome::Logits(want));
    assert_eq!(seen.first(), Some(&1));
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();

    // A budget below the idle size plus one session: the server refuses to start, and says why.
    let config = ServerConfig {
        memory_budget: Some(session / 2),
        ..ServerConfig::default()
    };
    let e = privinfer_engine::Server::memory_slots(&config, idle, session).unwrap_err();
    assert!(e.to_string().starts_with("memory budget of"), "{e}");
}
