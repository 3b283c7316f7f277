//! The transformer non-linearities' fixed-point definitions (`nn::approx`) as the parameter
//! sets of their protocols (`mpc`): one mapping, used by the planner's cost model, the run
//! loop and the benchmarks.

/// GELU's tables as the protocol reads them (in `g`'s form), `chooser` choosing in its first
/// comparison.
pub fn gelu_spec(g: &nn::approx::Gelu, chooser: mpc::Party) -> mpc::GeluSpec<'_> {
    mpc::GeluSpec {
        s: g.s,
        m: g.m,
        f: g.f,
        j: g.j,
        e: g.e,
        product_bits: g.product_bits(),
        a: &g.a,
        b: &g.b,
        signed: g.form == nn::approx::GeluForm::Signed,
        chooser,
    }
}

/// Softmax's tables as the protocol reads them; `wide`: the exponential's tables answer in the
/// product ring (the plan's choice, `Plan::softmax_wide`); `extra`: bits of scale its input
/// carries beyond 2^s (s when it reads Q·Kᵀ unrounded, `Plan::softmax_extra`).
pub fn softmax_spec(t: &nn::approx::Softmax, wide: bool, extra: u32) -> mpc::SoftmaxSpec<'_> {
    mpc::SoftmaxSpec {
        s: t.s,
        m: t.m,
        f: t.f,
        j: t.j,
        k: t.k,
        big_k: t.big_k,
        eh: &t.eh,
        el: &t.el,
        rt: &t.rt,
        rd: &t.rd,
        wide_tables: wide,
        extra,
    }
}

/// LayerNorm's parameters as the protocol reads them, its last truncation in the form `tail`
/// (the plan's choice, `Plan::layernorm_tail`), `mean_chooser` choosing in its mean's lookup
/// (`Plan::layernorm_chooser`).
pub fn layernorm_spec(
    l: &nn::approx::LayerNorm,
    tail: mpc::TruncForm,
    mean_chooser: mpc::Party,
) -> mpc::LayerNormSpec<'_> {
    mpc::LayerNormSpec {
        s: l.s,
        m: l.m,
        d: l.d,
        t: l.t,
        mul: l.mul,
        t2: l.t2,
        mul2: l.mul2,
        eps: l.eps,
        rt: &l.rt,
        rd: &l.rd,
        tail,
        mean_chooser,
    }
}
