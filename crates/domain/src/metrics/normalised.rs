//! ImageNet-P's mFR and mT5D: flip rates and top-5 distances relative to a
//! baseline model.

use serde::{Deserialize, Serialize};

/// One model's flip rates (FR) and top-5 distances (T5D) relative to a baseline
/// model, family by family, with their means (mFR, mT5D) as in ImageNet-P:
/// `FR = FP_model / FP_baseline`, `mFR = mean of FR over the families`. Families
/// where the baseline's value is 0 or missing have no ratio and are left out of
/// the mean (their count is reported).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalised {
    /// Per family: FR, or `None` when the baseline gives no ratio.
    pub fr: Vec<Option<f64>>,
    /// Per family: T5D ratio, or `None`.
    pub t5d: Vec<Option<f64>>,
    /// Mean of the FRs that exist.
    pub mfr: Option<f64>,
    /// Mean of the T5D ratios that exist.
    pub mt5d: Option<f64>,
}

/// Normalises `model`'s per-family (flip probability, top-5 distance) by
/// `baseline`'s, family by family (both slices in the same family order).
pub fn normalised(model: &[(Option<f64>, Option<f64>)], baseline: &[(Option<f64>, Option<f64>)]) -> Normalised {
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let fr: Vec<Option<f64>> = model.iter().zip(baseline).map(|(m, b)| ratio(m.0, b.0)).collect();
    let t5d: Vec<Option<f64>> = model.iter().zip(baseline).map(|(m, b)| ratio(m.1, b.1)).collect();
    let mean = |v: &[Option<f64>]| {
        let x: Vec<f64> = v.iter().flatten().copied().collect();
        (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
    };
    Normalised { mfr: mean(&fr), mt5d: mean(&t5d), fr, t5d }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_rates_by_hand() {
        // Two families; baseline FP .2 / .4, T5D 1 / 0 (no ratio for the second).
        let base = [(Some(0.2), Some(1.0)), (Some(0.4), Some(0.0))];
        let m = [(Some(0.1), Some(0.5)), (Some(0.6), Some(0.3))];
        let n = normalised(&m, &base);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert!(close(n.fr[0], 0.5) && close(n.fr[1], 1.5), "{:?}", n.fr);
        assert!(close(n.mfr, 1.0));
        assert_eq!(n.t5d, vec![Some(0.5), None]);
        assert_eq!(n.mt5d, Some(0.5));
        // The baseline against itself: 1 everywhere it has a value.
        assert_eq!(normalised(&base, &base).mfr, Some(1.0));
        assert_eq!(normalised(&[(None, None)], &base[..1]).mfr, None);
    }
}
