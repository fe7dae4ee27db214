//! One file per state type: each runs its state inside the engine (`impl Shared`).

mod choice;
mod distributed_map;
mod fail;
mod map;
mod parallel;
mod pass;
mod succeed;
mod task;
mod wait;
