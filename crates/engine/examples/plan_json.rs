//! Prints the public plan of an ONNX model as the server sends it in its hello (JSON), e.g. to
//! seed the `server_hello` fuzz target: `cargo run -p privinfer-engine --example plan_json -- M.onnx`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: plan_json MODEL.onnx")?;
    let model = nn::load(&path)?;
    let plan = privinfer_engine::Plan::compile(&model, &privinfer_engine::PlanConfig::default())?;
    println!("{}", serde_json::to_string(&plan)?);
    Ok(())
}
