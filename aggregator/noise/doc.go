// Package noise draws the noise of Glimpse's disclosure control: integers
// from the discrete Laplace distribution, keyed by a per-site secret and
// the cell a released number describes.
//
// # The mechanism
//
// Laplace(cell, num, den) returns x with probability
//
//	P(x) = (1-a)/(1+a) * a^|x|,  a = exp(-den/num),
//
// the discrete Laplace (two-sided geometric) distribution with scale
// num/den. Added to an integer whose value one visitor can change by at
// most Δ (its sensitivity), noise of scale Δ/ε makes the released number
// ε-differentially private: moving the true value by Δ changes the
// probability of any output by a factor of at most a^-Δ = e^ε. The caller
// passes Δ/ε as a fraction, e.g. 6/1 for Δ = 3 and ε = 0.5.
//
// # Discrete, and integer arithmetic only
//
// The textbook sampler, scale * ln(uniform float) with a random sign,
// leaks: floating-point numbers are unevenly spaced, so the set of
// outputs it can produce, down to the least significant bits, differs
// with the true value, and a released number can reveal it exactly
// (Mironov, "On significance of the least significant bits for
// differential privacy", CCS 2012). Here the output is an integer and is
// drawn with integer arithmetic only, with exactly the distribution
// above: Algorithm 2 of Canonne, Kamath and Steinke, "The Discrete
// Gaussian for Differential Privacy" (NeurIPS 2020), over their
// Algorithm 1 for Bernoulli(exp(-γ)), over uniform integers drawn by
// rejection. There is no floating point in sampling.
//
// # Keyed and deterministic
//
// The randomness is not drawn from a generator but read from a stream,
// HMAC-SHA256 under the site's key of a domain prefix, the cell and a
// block counter. So the same cell always gets the same noise: asking
// the same question again, in another order, from another dashboard or
// after a restart returns the same number, and averaging repeats gains
// nothing. Different cells get independent noise, as far as HMAC-SHA256
// is a pseudorandom function. This is the consistency of LinkedIn's
// PriPeARL (Kenthapadi and Tran, CIKM 2018).
//
// # What the caller must make canonical
//
// The cell is the whole question a number answers, in one canonical
// spelling: site, metric, the period resolved to absolute bounds in a
// fixed zone, filters sorted and normalised, defaults written out, the
// breakdown dimension and value. Two spellings of one question must give
// the same cell, or a reader gets two independent draws and can average
// them; two different questions must give different cells; and nothing
// that varies between askings of one question (request ids, the time of
// asking) may be in it. The scale is not part of the cell (a cell
// released at two scales is two releases). The noise does not depend on
// the true value either: a cell whose data still changes (today, the
// realtime window) keeps its noise while the value moves, so the
// difference of two answers is the exact change; such cells need the
// state of the data in the cell, or no release until it is final.
//
// # The key
//
// The key must stay secret: anyone who has it can recompute the noise of
// every cell and subtract it, recovering the exact numbers. Treat it as
// a signing key; never log it (printing a Noise shows none of it).
// Changing the key, or the derivation in this package, gives every cell
// fresh noise, so a reader who saw both can average the two.
package noise
