//! The client's parsing and validation of a server hello and its plan: never a panic, whatever
//! the bytes; a plan that validates can be asked for its key requests and digest.
#![no_main]
use libfuzzer_sys::fuzz_target;
use privinfer_engine::handshake::ServerHello;
use privinfer_engine::Plan;

fn check(plan: Plan) {
    if plan.validate().is_ok() {
        let _ = plan.key_requests();
        let _ = plan.digest();
        let _ = plan.predicted_linear_cost();
        let _ = plan.predicted_session_memory(false);
        let _ = plan.predicted_session_memory(true);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = serde_json::from_slice::<ServerHello>(data) {
        if let Ok(plan) = serde_json::from_value::<Plan>(hello.plan) {
            check(plan);
        }
    }
    if let Ok(plan) = serde_json::from_slice::<Plan>(data) {
        check(plan);
    }
});
