//! A small deterministic RNG for scenario tests (xorshift64*, Gaussian by Box-Muller), so noisy
//! scenarios are reproducible without a dependency.

/// xorshift64* generator; the seed must be non-zero.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// Uniform in (0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal sample.
    pub(crate) fn gauss(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
