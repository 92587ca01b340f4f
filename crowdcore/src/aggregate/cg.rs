//! Nonlinear conjugate gradients, a line-by-line port of SciPy's `minimize(method="CG")`
//! (Polak–Ribière with Powell's restart, `_line_search_wolfe12`: MINPACK-2's `dcsrch` with a
//! fallback to the Wolfe zoom search), so that GLAD's M-step takes the steps crowd-kit's does.

/// A smooth function to minimise.
pub(crate) trait Objective {
    /// Returns `f(x)` and writes `∇f(x)` into `grad`.
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m: f64, v| m.max(v.abs()))
}

/// numpy's `sign`: 0 for 0, NaN for NaN.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x == 0.0 {
        0.0
    } else {
        f64::NAN
    }
}

/// Python's `max` / `min` of floats: the first argument unless the second compares greater
/// (resp. less).
fn py_max(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}
fn py_min(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

/// The objective along `xk + s * pk`, caching the last point as SciPy's `ScalarFunction` does.
struct Line<'a, O: Objective> {
    obj: &'a mut O,
    xk: &'a [f64],
    pk: &'a [f64],
    x: Vec<f64>,
    g: Vec<f64>,
    at: Option<(f64, f64)>,
    /// The gradient of the last `derphi` call and its step (SciPy's `gval`, `gval_alpha`).
    gval: Vec<f64>,
    gval_alpha: Option<f64>,
}

impl<'a, O: Objective> Line<'a, O> {
    fn new(obj: &'a mut O, xk: &'a [f64], pk: &'a [f64], gfk: &[f64]) -> Self {
        let n = xk.len();
        Self {
            obj,
            xk,
            pk,
            x: vec![0.0; n],
            g: vec![0.0; n],
            at: None,
            gval: gfk.to_vec(),
            gval_alpha: None,
        }
    }

    fn eval(&mut self, s: f64) -> f64 {
        if let Some((at, f)) = self.at
            && at.to_bits() == s.to_bits()
        {
            return f;
        }
        for ((x, xk), pk) in self.x.iter_mut().zip(self.xk).zip(self.pk) {
            *x = xk + s * pk;
        }
        let f = self.obj.eval(&self.x, &mut self.g);
        self.at = Some((s, f));
        f
    }

    fn phi(&mut self, s: f64) -> f64 {
        self.eval(s)
    }

    fn derphi(&mut self, s: f64) -> f64 {
        self.eval(s);
        self.gval.copy_from_slice(&self.g);
        self.gval_alpha = Some(s);
        dot(&self.gval, self.pk)
    }
}

/// A Polak–Ribière–Powell step: `(alpha, x_{k+1}, p_{k+1}, g_{k+1}, |g_{k+1}|_inf)`.
type PrStep = (f64, Vec<f64>, Vec<f64>, Vec<f64>, f64);

/// `minimize(f, x0, method="CG", jac=True, tol=gtol, options={"maxiter": maxiter})`; returns
/// `res.x`.
pub(crate) fn minimize_cg<O: Objective>(
    obj: &mut O,
    x0: &[f64],
    gtol: f64,
    maxiter: usize,
) -> Vec<f64> {
    let n = x0.len();
    let (c1, c2, sigma_3) = (1e-4, 0.4, 0.01);
    let mut xk = x0.to_vec();
    let mut gfk = vec![0.0; n];
    let mut old_fval = obj.eval(&xk, &mut gfk);
    let mut old_old_fval = old_fval + dot(&gfk, &gfk).sqrt() / 2.0;
    let mut pk: Vec<f64> = gfk.iter().map(|g| -g).collect();
    let mut gnorm = max_abs(&gfk);
    let mut k = 0;

    // Polak–Ribière–Powell step from (xk, pk, gfk) with step alpha and new gradient gfkp1.
    let pr_step = |xk: &[f64], pk: &[f64], gfk: &[f64], deltak: f64, alpha: f64, gfkp1: &[f64]| {
        let xkp1: Vec<f64> = xk.iter().zip(pk).map(|(x, p)| x + alpha * p).collect();
        let yk_dot: f64 = gfkp1.iter().zip(gfk).map(|(a, b)| (a - b) * a).sum();
        let beta_k = py_max(0.0, yk_dot / deltak);
        let pkp1: Vec<f64> = gfkp1.iter().zip(pk).map(|(g, p)| -g + beta_k * p).collect();
        let gnorm = max_abs(gfkp1);
        (alpha, xkp1, pkp1, gfkp1.to_vec(), gnorm)
    };

    while gnorm > gtol && k < maxiter {
        let deltak = dot(&gfk, &gfk);
        let mut cached: Option<PrStep> = None;
        let mut descent = |alpha: f64, gfkp1: &[f64]| -> bool {
            let step = pr_step(&xk, &pk, &gfk, deltak, alpha, gfkp1);
            let ok = step.4 <= gtol || dot(&step.2, &step.3) <= -sigma_3 * dot(&step.3, &step.3);
            cached = Some(step);
            ok
        };
        let found = line_search_wolfe12(
            obj,
            &xk,
            &pk,
            &gfk,
            old_fval,
            old_old_fval,
            c1,
            c2,
            &mut descent,
        );
        let Some(found) = found else {
            break; // SciPy: warnflag 2, x stays at the last iterate
        };
        old_fval = found.fval;
        old_old_fval = found.old_fval;
        let step = match cached {
            Some(step) if step.0 == found.alpha => step,
            _ => {
                let gfkp1 = match found.gfkp1 {
                    Some(g) => g,
                    None => {
                        let x: Vec<f64> = xk
                            .iter()
                            .zip(&pk)
                            .map(|(x, p)| x + found.alpha * p)
                            .collect();
                        let mut g = vec![0.0; n];
                        obj.eval(&x, &mut g);
                        g
                    }
                };
                pr_step(&xk, &pk, &gfk, deltak, found.alpha, &gfkp1)
            }
        };
        (_, xk, pk, gfk, gnorm) = step;
        k += 1;
    }
    xk
}

struct Found {
    alpha: f64,
    fval: f64,
    old_fval: f64,
    gfkp1: Option<Vec<f64>>,
}

#[allow(clippy::too_many_arguments)]
fn line_search_wolfe12<O: Objective>(
    obj: &mut O,
    xk: &[f64],
    pk: &[f64],
    gfk: &[f64],
    old_fval: f64,
    old_old_fval: f64,
    c1: f64,
    c2: f64,
    extra: &mut dyn FnMut(f64, &[f64]) -> bool,
) -> Option<Found> {
    let (amin, amax) = (1e-100, 1e100);
    {
        let mut line = Line::new(obj, xk, pk, gfk);
        let derphi0 = dot(gfk, pk);
        let mut alpha1 = if derphi0 != 0.0 {
            py_min(1.0, 1.01 * 2.0 * (old_fval - old_old_fval) / derphi0)
        } else {
            1.0
        };
        if alpha1 < 0.0 {
            alpha1 = 1.0;
        }
        let mut search = Dcsrch::new(c1, c2, 1e-14, amin, amax);
        if let Some((stp, phi1, phi0)) = search.run(&mut line, alpha1, old_fval, derphi0, 100) {
            let g = line.gval.clone();
            if extra(stp, &g) {
                return Some(Found {
                    alpha: stp,
                    fval: phi1,
                    old_fval: phi0,
                    gfkp1: Some(g),
                });
            }
        }
    }
    let mut line = Line::new(obj, xk, pk, gfk);
    line.gval_alpha = None;
    wolfe2(&mut line, old_fval, old_old_fval, c1, c2, amax, extra)
}

/// `line_search_wolfe2` / `scalar_search_wolfe2` (maxiter 10).
fn wolfe2<O: Objective>(
    line: &mut Line<'_, O>,
    phi0: f64,
    old_phi0: f64,
    c1: f64,
    c2: f64,
    amax: f64,
    extra: &mut dyn FnMut(f64, &[f64]) -> bool,
) -> Option<Found> {
    let derphi0 = dot(&line.gval, line.pk);
    let mut extra2 = |line: &mut Line<'_, O>, alpha: f64| -> bool {
        if line.gval_alpha.map(f64::to_bits) != Some(alpha.to_bits()) {
            line.derphi(alpha);
        }
        let g = line.gval.clone();
        extra(alpha, &g)
    };
    let mut alpha0 = 0.0;
    let mut alpha1 = if derphi0 != 0.0 {
        py_min(1.0, 1.01 * 2.0 * (phi0 - old_phi0) / derphi0)
    } else {
        1.0
    };
    if alpha1 < 0.0 {
        alpha1 = 1.0;
    }
    alpha1 = py_min(alpha1, amax);
    let mut phi_a1 = line.phi(alpha1);
    let mut phi_a0 = phi0;
    let mut derphi_a0 = derphi0;
    let result: Option<(f64, f64, bool)>;
    let mut i = 0;
    loop {
        if i >= 10 {
            // Did not converge: SciPy still returns alpha1, without a gradient.
            result = Some((alpha1, phi_a1, false));
            break;
        }
        if alpha1 == 0.0 || alpha0 > amax {
            result = None;
            break;
        }
        if phi_a1 > phi0 + c1 * alpha1 * derphi0 || (phi_a1 >= phi_a0 && i > 0) {
            result = zoom(
                line,
                alpha0,
                alpha1,
                phi_a0,
                phi_a1,
                derphi_a0,
                phi0,
                derphi0,
                c1,
                c2,
                &mut extra2,
            );
            break;
        }
        let derphi_a1 = line.derphi(alpha1);
        if derphi_a1.abs() <= -c2 * derphi0 && extra2(line, alpha1) {
            result = Some((alpha1, phi_a1, true));
            break;
        }
        if derphi_a1 >= 0.0 {
            result = zoom(
                line,
                alpha1,
                alpha0,
                phi_a1,
                phi_a0,
                derphi_a1,
                phi0,
                derphi0,
                c1,
                c2,
                &mut extra2,
            );
            break;
        }
        let alpha2 = py_min(2.0 * alpha1, amax);
        alpha0 = alpha1;
        alpha1 = alpha2;
        phi_a0 = phi_a1;
        phi_a1 = line.phi(alpha1);
        derphi_a0 = derphi_a1;
        i += 1;
    }
    let (alpha, phi, has_gradient) = result?;
    Some(Found {
        alpha,
        fval: phi,
        old_fval: phi0,
        gfkp1: has_gradient.then(|| line.gval.clone()),
    })
}

#[allow(clippy::too_many_arguments)]
fn zoom<O: Objective>(
    line: &mut Line<'_, O>,
    mut a_lo: f64,
    mut a_hi: f64,
    mut phi_lo: f64,
    mut phi_hi: f64,
    mut derphi_lo: f64,
    phi0: f64,
    derphi0: f64,
    c1: f64,
    c2: f64,
    extra: &mut dyn FnMut(&mut Line<'_, O>, f64) -> bool,
) -> Option<(f64, f64, bool)> {
    let (delta1, delta2) = (0.2, 0.1);
    let mut phi_rec = phi0;
    let mut a_rec = 0.0;
    let mut i = 0;
    loop {
        let dalpha = a_hi - a_lo;
        let (a, b) = if dalpha < 0.0 {
            (a_hi, a_lo)
        } else {
            (a_lo, a_hi)
        };
        let mut a_j = None;
        let mut cchk = 0.0;
        if i > 0 {
            cchk = delta1 * dalpha;
            a_j = cubicmin(a_lo, phi_lo, derphi_lo, a_hi, phi_hi, a_rec, phi_rec);
        }
        let use_quad = i == 0 || a_j.is_none_or(|x| x > b - cchk || x < a + cchk);
        let a_j = if use_quad {
            let qchk = delta2 * dalpha;
            match quadmin(a_lo, phi_lo, derphi_lo, a_hi, phi_hi) {
                Some(x) if !(x > b - qchk || x < a + qchk) => x,
                _ => a_lo + 0.5 * dalpha,
            }
        } else {
            a_j.unwrap_or(a_lo + 0.5 * dalpha)
        };
        let phi_aj = line.phi(a_j);
        if phi_aj > phi0 + c1 * a_j * derphi0 || phi_aj >= phi_lo {
            phi_rec = phi_hi;
            a_rec = a_hi;
            a_hi = a_j;
            phi_hi = phi_aj;
        } else {
            let derphi_aj = line.derphi(a_j);
            if derphi_aj.abs() <= -c2 * derphi0 && extra(line, a_j) {
                return Some((a_j, phi_aj, true));
            }
            if derphi_aj * (a_hi - a_lo) >= 0.0 {
                phi_rec = phi_hi;
                a_rec = a_hi;
                a_hi = a_lo;
                phi_hi = phi_lo;
            } else {
                phi_rec = phi_lo;
                a_rec = a_lo;
            }
            a_lo = a_j;
            phi_lo = phi_aj;
            derphi_lo = derphi_aj;
        }
        i += 1;
        if i > 10 {
            return None;
        }
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Minimiser of the cubic through (a, fa, fpa), (b, fb), (c, fc); `None` where numpy would
/// raise a floating-point error.
fn cubicmin(a: f64, fa: f64, fpa: f64, b: f64, fb: f64, c: f64, fc: f64) -> Option<f64> {
    let cc = fpa;
    let db = b - a;
    let dc = c - a;
    let denom = finite((db * dc).powi(2) * (db - dc))?;
    if denom == 0.0 {
        return None;
    }
    let v0 = finite(fb - fa - cc * db)?;
    let v1 = finite(fc - fa - cc * dc)?;
    let aa = finite(finite(dc * dc * v0 + -(db * db) * v1)? / denom)?;
    let bb = finite(finite(-(dc * dc * dc) * v0 + db * db * db * v1)? / denom)?;
    let radical = finite(bb * bb - 3.0 * aa * cc)?;
    if radical < 0.0 || aa == 0.0 {
        return None;
    }
    finite(a + (-bb + radical.sqrt()) / (3.0 * aa))
}

/// Minimiser of the quadratic through (a, fa, fpa), (b, fb).
fn quadmin(a: f64, fa: f64, fpa: f64, b: f64, fb: f64) -> Option<f64> {
    let db = b - a;
    let db2 = finite(db * db)?;
    if db2 == 0.0 {
        return None;
    }
    let bb = finite((fb - fa - fpa * db) / db2)?;
    if bb == 0.0 {
        return None;
    }
    finite(a - fpa / (2.0 * bb))
}

/// MINPACK-2 `dcsrch` (Moré–Thuente), as SciPy's `_dcsrch.DCSRCH`.
struct Dcsrch {
    ftol: f64,
    gtol: f64,
    xtol: f64,
    stpmin: f64,
    stpmax: f64,
    brackt: bool,
    stage: u8,
    ginit: f64,
    gtest: f64,
    gx: f64,
    gy: f64,
    finit: f64,
    fx: f64,
    fy: f64,
    stx: f64,
    sty: f64,
    stmin: f64,
    stmax: f64,
    width: f64,
    width1: f64,
}

#[derive(PartialEq)]
enum Task {
    Start,
    Fg,
    Done,
    Fail,
}

impl Dcsrch {
    fn new(ftol: f64, gtol: f64, xtol: f64, stpmin: f64, stpmax: f64) -> Self {
        Self {
            ftol,
            gtol,
            xtol,
            stpmin,
            stpmax,
            brackt: false,
            stage: 1,
            ginit: 0.0,
            gtest: 0.0,
            gx: 0.0,
            gy: 0.0,
            finit: 0.0,
            fx: 0.0,
            fy: 0.0,
            stx: 0.0,
            sty: 0.0,
            stmin: 0.0,
            stmax: 0.0,
            width: 0.0,
            width1: 0.0,
        }
    }

    /// Returns `(stp, phi(stp), phi0)` or `None` on a warning or error.
    fn run<O: Objective>(
        &mut self,
        line: &mut Line<'_, O>,
        mut alpha1: f64,
        phi0: f64,
        derphi0: f64,
        maxiter: usize,
    ) -> Option<(f64, f64, f64)> {
        let mut phi1 = phi0;
        let mut derphi1 = derphi0;
        let mut task = Task::Start;
        for _ in 0..maxiter {
            let (stp, t) = self.iterate(alpha1, phi1, derphi1, task);
            task = t;
            if !stp.is_finite() {
                return None;
            }
            match task {
                Task::Fg => {
                    alpha1 = stp;
                    phi1 = line.phi(stp);
                    derphi1 = line.derphi(stp);
                }
                Task::Done => return Some((stp, phi1, phi0)),
                Task::Fail | Task::Start => return None,
            }
        }
        None
    }

    fn iterate(&mut self, mut stp: f64, f: f64, g: f64, task: Task) -> (f64, Task) {
        let (p5, p66, xtrapl, xtrapu) = (0.5, 0.66, 1.1, 4.0);
        if task == Task::Start {
            if stp < self.stpmin
                || stp > self.stpmax
                || g >= 0.0
                || self.ftol < 0.0
                || self.gtol < 0.0
                || self.xtol < 0.0
                || self.stpmin < 0.0
                || self.stpmax < self.stpmin
            {
                return (stp, Task::Fail);
            }
            self.brackt = false;
            self.stage = 1;
            self.finit = f;
            self.ginit = g;
            self.gtest = self.ftol * self.ginit;
            self.width = self.stpmax - self.stpmin;
            self.width1 = self.width / p5;
            self.stx = 0.0;
            self.fx = self.finit;
            self.gx = self.ginit;
            self.sty = 0.0;
            self.fy = self.finit;
            self.gy = self.ginit;
            self.stmin = 0.0;
            self.stmax = stp + xtrapu * stp;
            return (stp, Task::Fg);
        }
        let ftest = self.finit + stp * self.gtest;
        if self.stage == 1 && f <= ftest && g >= 0.0 {
            self.stage = 2;
        }
        let mut warn = false;
        if self.brackt && (stp <= self.stmin || stp >= self.stmax) {
            warn = true;
        }
        if self.brackt && self.stmax - self.stmin <= self.xtol * self.stmax {
            warn = true;
        }
        if stp == self.stpmax && f <= ftest && g <= self.gtest {
            warn = true;
        }
        if stp == self.stpmin && (f > ftest || g >= self.gtest) {
            warn = true;
        }
        // SciPy checks convergence last, so it overrides a warning.
        if f <= ftest && g.abs() <= self.gtol * -self.ginit {
            return (stp, Task::Done);
        }
        if warn {
            return (stp, Task::Fail);
        }
        if self.stage == 1 && f <= self.fx && f > ftest {
            let fm = f - stp * self.gtest;
            let fxm = self.fx - self.stx * self.gtest;
            let fym = self.fy - self.sty * self.gtest;
            let gm = g - self.gtest;
            let gxm = self.gx - self.gtest;
            let gym = self.gy - self.gtest;
            let s = dcstep(
                self.stx,
                fxm,
                gxm,
                self.sty,
                fym,
                gym,
                stp,
                fm,
                gm,
                self.brackt,
                self.stmin,
                self.stmax,
            );
            self.stx = s.stx;
            self.sty = s.sty;
            stp = s.stp;
            self.brackt = s.brackt;
            self.fx = s.fx + self.stx * self.gtest;
            self.fy = s.fy + self.sty * self.gtest;
            self.gx = s.dx + self.gtest;
            self.gy = s.dy + self.gtest;
        } else {
            let s = dcstep(
                self.stx,
                self.fx,
                self.gx,
                self.sty,
                self.fy,
                self.gy,
                stp,
                f,
                g,
                self.brackt,
                self.stmin,
                self.stmax,
            );
            self.stx = s.stx;
            self.fx = s.fx;
            self.gx = s.dx;
            self.sty = s.sty;
            self.fy = s.fy;
            self.gy = s.dy;
            stp = s.stp;
            self.brackt = s.brackt;
        }
        if self.brackt {
            if (self.sty - self.stx).abs() >= p66 * self.width1 {
                stp = self.stx + p5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
        }
        if self.brackt {
            self.stmin = self.stx.min(self.sty);
            self.stmax = self.stx.max(self.sty);
        } else {
            self.stmin = stp + xtrapl * (stp - self.stx);
            self.stmax = stp + xtrapu * (stp - self.stx);
        }
        stp = clip(stp, self.stpmin, self.stpmax);
        if self.brackt
            && (stp <= self.stmin
                || stp >= self.stmax
                || self.stmax - self.stmin <= self.xtol * self.stmax)
        {
            stp = self.stx;
        }
        (stp, Task::Fg)
    }
}

/// numpy's `clip`: NaN stays NaN.
fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

struct Step {
    stx: f64,
    fx: f64,
    dx: f64,
    sty: f64,
    fy: f64,
    dy: f64,
    stp: f64,
    brackt: bool,
}

#[allow(clippy::too_many_arguments)]
fn dcstep(
    mut stx: f64,
    mut fx: f64,
    mut dx: f64,
    mut sty: f64,
    mut fy: f64,
    mut dy: f64,
    stp: f64,
    fp: f64,
    dp: f64,
    mut brackt: bool,
    stpmin: f64,
    stpmax: f64,
) -> Step {
    let sgnd = sign(dp) * sign(dx);
    let max3 = |a: f64, b: f64, c: f64| py_max(py_max(a, b), c);
    let stpf;
    if fp > fx {
        let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
        let s = max3(theta.abs(), dx.abs(), dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - dx / s * (dp / s)).sqrt();
        if stp < stx {
            gamma = -gamma;
        }
        let p = gamma - dx + theta;
        let q = gamma - dx + gamma + dp;
        let r = p / q;
        let stpc = stx + r * (stp - stx);
        let stpq = stx + dx / ((fx - fp) / (stp - stx) + dx) / 2.0 * (stp - stx);
        stpf = if (stpc - stx).abs() <= (stpq - stx).abs() {
            stpc
        } else {
            stpc + (stpq - stpc) / 2.0
        };
        brackt = true;
    } else if sgnd < 0.0 {
        let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
        let s = max3(theta.abs(), dx.abs(), dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - dx / s * (dp / s)).sqrt();
        if stp > stx {
            gamma = -gamma;
        }
        let p = gamma - dp + theta;
        let q = gamma - dp + gamma + dx;
        let r = p / q;
        let stpc = stp + r * (stx - stp);
        let stpq = stp + dp / (dp - dx) * (stx - stp);
        stpf = if (stpc - stp).abs() > (stpq - stp).abs() {
            stpc
        } else {
            stpq
        };
        brackt = true;
    } else if dp.abs() < dx.abs() {
        let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
        let s = max3(theta.abs(), dx.abs(), dp.abs());
        let mut gamma = s * py_max(0.0, (theta / s).powi(2) - dx / s * (dp / s)).sqrt();
        if stp > stx {
            gamma = -gamma;
        }
        let p = gamma - dp + theta;
        let q = gamma + (dx - dp) + gamma;
        let r = p / q;
        let stpc = if r < 0.0 && gamma != 0.0 {
            stp + r * (stx - stp)
        } else if stp > stx {
            stpmax
        } else {
            stpmin
        };
        let stpq = stp + dp / (dp - dx) * (stx - stp);
        if brackt {
            let f = if (stpc - stp).abs() < (stpq - stp).abs() {
                stpc
            } else {
                stpq
            };
            stpf = if stp > stx {
                py_min(stp + 0.66 * (sty - stp), f)
            } else {
                py_max(stp + 0.66 * (sty - stp), f)
            };
        } else {
            let f = if (stpc - stp).abs() > (stpq - stp).abs() {
                stpc
            } else {
                stpq
            };
            stpf = clip(f, stpmin, stpmax);
        }
    } else if brackt {
        let theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp;
        let s = max3(theta.abs(), dy.abs(), dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - dy / s * (dp / s)).sqrt();
        if stp > sty {
            gamma = -gamma;
        }
        let p = gamma - dp + theta;
        let q = gamma - dp + gamma + dy;
        let r = p / q;
        stpf = stp + r * (sty - stp);
    } else if stp > stx {
        stpf = stpmax;
    } else {
        stpf = stpmin;
    }
    if fp > fx {
        sty = stp;
        fy = fp;
        dy = dp;
    } else {
        if sgnd < 0.0 {
            sty = stx;
            fy = fx;
            dy = dx;
        }
        stx = stp;
        fx = fp;
        dx = dp;
    }
    Step {
        stx,
        fx,
        dx,
        sty,
        fy,
        dy,
        stp: stpf,
        brackt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rosenbrock;
    impl Objective for Rosenbrock {
        fn eval(&mut self, x: &[f64], g: &mut [f64]) -> f64 {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        }
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let x = minimize_cg(&mut Rosenbrock, &[-1.2, 1.0], 1e-8, 2000);
        assert!(
            (x[0] - 1.0).abs() < 1e-5 && (x[1] - 1.0).abs() < 1e-5,
            "{x:?}"
        );
    }
}
