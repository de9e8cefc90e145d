(** PyTorch's 2-D convolution with zero padding, any stride s and padding
    (pad1, pad2): tap i reads the input at s·q + δ_i, δ_i = i·dil − pad, on an
    n1×n2 input read at the pixels of an m1×m2 output grid; its dense form
    out_q = Σ_p x_p K̃[p − s·q] + b, K̃[e] = Σ_{taps with δ = e} K[:, :, i, j]ᵀ;
    and the stride-1 'same' convolution of Conv2d.v as its instance. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Mhsa Conv2d.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

(** The pixel at integer position z of an n1×n2 grid, or None in the padding. *)
Definition at2 (n1 n2 : nat) (z : int * int) : option (pixel n1 n2) :=
  match ipos n1 z.1, ipos n2 z.2 with Some a, Some b => Some (a, b) | _, _ => None end.

Lemma at2P n1 n2 z (p : pixel n1 n2) : (at2 n1 n2 z == Some p) = (z == (p.1%:Z, p.2%:Z)).
Proof.
case: p z => [a b] [z1 z2]; rewrite /at2 xpair_eqE /= -!ipos_eq.
by case: (ipos n1 z1) => [a'|]; case: (ipos n2 z2) => [b'|]; rewrite /= ?andbF.
Qed.

(** (u + e == v) = (e == v − u), on both coordinates. *)
Lemma pair_shift (u e v : int * int) :
  ((u.1 + e.1, u.2 + e.2) == v) = (e == (v.1 - u.1, v.2 - u.2)).
Proof.
case: u e v => [u1 u2] [e1 e2] [v1 v2]; rewrite !xpair_eqE /=.
by rewrite ![e1 == _]eq_sym ![e2 == _]eq_sym !subr_eq ![e1 + _]addrC ![e2 + _]addrC; rewrite ![_ == u1 + e1]eq_sym ![_ == u2 + e2]eq_sym.
Qed.

(** PyTorch's offset of tap i with dilation dil and padding pad: i·dil − pad. *)
Definition tap_off_pad (k dil pad : nat) (i : 'I_k) : int := (i * dil)%:Z - pad%:Z.

Section Strided.
Context {R : realType} (n1 n2 m1 m2 s k1 k2 dil1 dil2 pad1 pad2 C D : nat).

Definition delta_pad (d : tap k1 k2) : int * int :=
  (tap_off_pad dil1 pad1 d.1, tap_off_pad dil2 pad2 d.2).

(** Conv2d(stride=s, padding=(pad1, pad2), padding_mode='zeros') with tap
    matrices w i j = K[:, :, i, j]ᵀ, at output pixel q of the m1×m2 grid. *)
Definition conv2d_strided (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : pixel n1 n2 -> 'rV[R]_C) (q : pixel m1 m2) : 'rV[R]_D :=
  \sum_(d : tap k1 k2)
     (if at2 n1 n2 ((s * q.1)%:Z + (delta_pad d).1, (s * q.2)%:Z + (delta_pad d).2)
      is Some p then x p *m w d.1 d.2 else 0) + b.

(** K̃[e]: the sum of the tap matrices at offset e (one tap at most if dil > 0). *)
Definition ktil (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (e : int * int) : 'M[R]_(C, D) :=
  \sum_(d : tap k1 k2 | delta_pad d == e) w d.1 d.2.

(** Position of input pixel p relative to output pixel q: p − s·q. *)
Definition rel_s (q : pixel m1 m2) (p : pixel n1 n2) : int * int :=
  (p.1%:Z - (s * q.1)%:Z, p.2%:Z - (s * q.2)%:Z).

Lemma conv2d_strided_dense w b x q :
  conv2d_strided w b x q = \sum_(p : pixel n1 n2) x p *m ktil w (rel_s q p) + b.
Proof.
congr (_ + _); rewrite (eq_bigr (fun d => \sum_(p : pixel n1 n2)
    (if at2 n1 n2 ((s * q.1)%:Z + (delta_pad d).1, (s * q.2)%:Z + (delta_pad d).2)
        == Some p then x p *m w d.1 d.2 else 0))); last first.
  move=> d _; case: (at2 _ _ _) => [t|]; last by rewrite big1.
  rewrite (bigD1 t) //= eqxx big1 ?addr0 // => p pt.
  by have -> : (Some t == Some p) = (t == p) by []; rewrite eq_sym (negbTE pt).
rewrite exchange_big; apply: eq_bigr => p _.
rewrite /ktil mulmx_sumr [RHS]big_mkcond /=; apply: eq_bigr => d _.
rewrite at2P; congr (if _ then _ else _).
exact: (pair_shift ((s * q.1)%:Z, (s * q.2)%:Z) (delta_pad d) (p.1%:Z, p.2%:Z)).
Qed.

End Strided.

(** The stride-1 'same' convolution is the instance s = 1, m = n,
    pad = dil·(k − 1)//2. *)
Lemma conv2d_zero_strided {R : realType} (H W k1 k2 dil1 dil2 C D : nat)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) b (x : pixel H W -> 'rV[R]_C) (q : pixel H W) :
  conv2d_zero dil1 dil2 w b x q =
  conv2d_strided 1 dil1 dil2 ((dil1 * k1.-1) %/ 2) ((dil2 * k2.-1) %/ 2) w b x q.
Proof. by rewrite /conv2d_strided !mul1n. Qed.
