//! A robot that misbehaves on request, to prove the sandbox contains it. Config:
//! `{"mode": "loop" | "memory" | "stack" | "panic" | "output" | "denied" | "error" | "ok"}`.
//! `output` prints 6 MiB and returns an 8 MiB message: it succeeds, with its output discarded and
//! the message cut. `error` returns the error record `no-phone`: `customer has no phone`.

use voronka_sdk::robot::{Context, Error, Guest, Outcome};

#[derive(serde::Deserialize)]
struct Config {
    mode: String,
}

struct Hostile;

#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u64; 64]) -> u64 {
    let next = [depth; 64];
    recurse(depth + 1, next) + pad[(depth % 64) as usize]
}

impl Guest for Hostile {
    fn run(ctx: Context) -> Result<Outcome, Error> {
        let config: Config = voronka_sdk::config(&ctx.config)?;
        match config.mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "stack" => Ok(Outcome { message: Some(recurse(0, [0; 64]).to_string()) }),
            "panic" => panic!("the hostile robot panics on purpose"),
            "output" => {
                let line = "x".repeat(1 << 16);
                for _ in 0..100 {
                    println!("{line}");
                }
                voronka_sdk::timeline::add_entry(&ctx.item.type_key, ctx.item.id, "printed 6 MiB")?;
                Ok(Outcome { message: Some("y".repeat(8 << 20)) })
            }
            "denied" => {
                voronka_sdk::kv::set("k", "v")?;
                Ok(Outcome { message: None })
            }
            "error" => Err(voronka_sdk::error("no-phone", "customer has no phone")),
            _ => Ok(Outcome { message: Some("fine".into()) }),
        }
    }
}

voronka_sdk::export_robot!(Hostile);
