//! shopflow's connections to the outside world.
