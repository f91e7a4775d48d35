//! A robot that returns at once: what the host adds to every robot run is all that is left to
//! measure (`cargo bench -p voronka --bench runtime`).

use voronka_sdk::robot::{Context, Error, Guest, Outcome};

struct Noop;

impl Guest for Noop {
    fn run(_ctx: Context) -> Result<Outcome, Error> {
        Ok(Outcome { message: None })
    }
}

voronka_sdk::export_robot!(Noop);
