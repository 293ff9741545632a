//! Greedy generation from token ids.  cargo run --example generate -- MODEL_DIR
use mobilellm::{Model, Sampling};

fn main() -> Result<(), mobilellm::Error> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "../../Tests/Fixtures/llama4-r1like-bf16-sharded".into());
    let model = Model::load(&path, None)?;
    let mut session = model.session(256)?;
    let result = session.generate(&[0, 169, 380, 264, 92], 16, Sampling::greedy(), false, |token, _text| {
        print!("{token} ");
        true
    })?;
    println!("\nstop reason {}", result.stop_reason);
    Ok(())
}
