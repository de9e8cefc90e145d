(** The 2-D stride-1 convolution with circular padding (PyTorch's
    padding_mode='circular', offsets δ_i = i·dil − dil·(k−1)//2 wrapping
    modulo H and W) on pixel tokens: T1 as an instance of [conv_layer_exact]
    (the table is 0 at every offset ≡ δ modulo the grid) and T3 under
    hypothesis (a), no two taps congruent modulo (H, W). *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.classical Require Import boolp classical_sets.
From mathcomp.analysis Require Import reals topology normedtype sequences exp.
From ConvAttn Require Import Mhsa Sufficiency Necessity Conv2d.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

(** z mod n as an index of an axis of length n (q, an index, shows n > 0). *)
Lemma wrap_subproof n (q : 'I_n) (z : int) : (`|(z %% n)%Z| < n)%N.
Proof.
have n0 : (0 < n)%N by apply: leq_ltn_trans (ltn_ord q).
have n0' : (n%:Z != 0) by rewrite eqz_nat -lt0n.
rewrite -ltz_nat gez0_abs ?modz_ge0 //; exact: ltz_pmod.
Qed.

Definition wrap n (q : 'I_n) (z : int) : 'I_n := Ordinal (wrap_subproof q z).

Lemma wrap_eq n (q a : 'I_n) z : (wrap q z == a) = (z == a %[mod n])%Z.
Proof.
have n0 : (0 < n)%N by apply: leq_ltn_trans (ltn_ord q).
have n0' : (n%:Z != 0) by rewrite eqz_nat -lt0n.
rewrite [(a %% n)%Z]modz_small ?ltz_nat ?ltn_ord // -val_eqE /=.
by rewrite -eqz_nat gez0_abs ?modz_ge0.
Qed.

Section Circular.
Context {R : realType} (H W k1 k2 dil1 dil2 C D : nat).

Local Notation pixel := (pixel H W).
Local Notation tap := (tap k1 k2).
Local Notation delta := (delta dil1 dil2).
Local Notation rel2 := (@rel2 H W).

(** The pixel at q + δ modulo the grid: ((q1 + δ1) mod H, (q2 + δ2) mod W). *)
Definition nb_circ (q : pixel) (d : tap) : option pixel :=
  Some (wrap q.1 (q.1%:Z + (delta d).1), wrap q.2 (q.2%:Z + (delta d).2)).

(** PyTorch's Conv2d(padding='same', padding_mode='circular', stride 1) with
    tap matrices w i j = K[:, :, i, j]ᵀ (C×D). *)
Definition conv2d_circular (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : pixel -> 'rV[R]_C) (q : pixel) : 'rV[R]_D :=
  \sum_(d : tap) x (wrap q.1 (q.1%:Z + (delta d).1), wrap q.2 (q.2%:Z + (delta d).2))
                   *m w d.1 d.2 + b.

Lemma conv2d_circular_tconv w b x q :
  conv2d_circular w b x q = tconv nb_circ (fun d => w d.1 d.2) b x q.
Proof. by []. Qed.

(** The table of head δ: 0 at every key − query ≡ δ modulo (H, W). *)
Definition hit_circ (d : tap) (r : int * int) : bool :=
  ((r.1 == (delta d).1 %[mod H]) && (r.2 == (delta d).2 %[mod W]))%Z.

Lemma hit_circP q t d : hit_circ d (rel2 q t) = (nb_circ q d == Some t).
Proof.
case: t => [a b]; rewrite /hit_circ /rel2 /nb_circ /=.
have -> : forall u v : pixel, (Some u == Some v) = (u == v) by [].
rewrite xpair_eqE !wrap_eq.
have e : forall u v z : int, absz (u - v - z)%R = absz (v + z - u)%R.
  by move=> u v z; rewrite -abszN opprB opprB addrA [z + v]addrC.
by rewrite !eqz_mod_dvd !dvdzE !e.
Qed.

(** T1 in 2-D, circular padding: the construction (one head per tap, table 0
    at every offset ≡ δ modulo (H, W) and −∞ elsewhere, W_V W_O = K[:, :, i, j]ᵀ,
    the bias in b_O) equals the circular convolution on every input at every
    pixel. *)
Theorem T1_conv2d_circular (Ext : finType) (xc : Ext -> 'rV[R]_C)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) (x : pixel -> 'rV[R]_C) q :
  mhsa rel2 (conv_head (Ext := Ext) hit_circ (fun d => w d.1 d.2)) b xc x q
  = conv2d_circular w b x q.
Proof. by rewrite conv2d_circular_tconv; apply: conv_layer_exact; exact: hit_circP. Qed.

(** Hypothesis (a) for circular padding: no two taps are congruent modulo (H, W). *)
Definition taps_distinct_mod :=
  forall d1 d2 : tap, ((delta d1).1 == (delta d2).1 %[mod H])%Z ->
                      ((delta d1).2 == (delta d2).2 %[mod W])%Z -> d1 = d2.

Lemma nb_circ_no_alias : taps_distinct_mod -> no_alias nb_circ.
Proof.
move=> dm q d1 d2 t E1 E2.
have := hit_circP q t d1; have := hit_circP q t d2.
rewrite E1 E2 eqxx /hit_circ => /andP [/eqP h21 /eqP h22] /andP [/eqP h11 /eqP h12].
by apply: dm; apply/eqP; [rewrite -h11 -h21 | rewrite -h12 -h22].
Qed.

(** T3 in 2-D, circular padding: under (a) (no two taps congruent modulo
    (H, W)) an MHSA layer whose extra keys have zero content and which equals
    the circular convolution on all inputs has at least as many heads as the
    dimension of the span of the taps. *)
Theorem T3_conv2d_circular (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext (int * int)%type C D Dk Dv) (bo : 'rV[R]_D)
    (xc : Ext -> 'rV[R]_C) (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) :
  (0 < H)%N -> (0 < W)%N ->
  (forall d1 d2 : tap, ((delta d1).1 == (delta d2).1 %[mod H])%Z ->
                       ((delta d1).2 == (delta d2).2 %[mod W])%Z -> d1 = d2) ->
  (forall e, xc e = 0) ->
  (forall x q, mhsa rel2 hd bo xc x q = conv2d_circular w b x q) ->
  (\rank (\sum_(d : tap) <<mxvec (w d.1 d.2)>>) <= #|Hd|)%N.
Proof.
move=> H0 W0 dm xc0 ex.
have ex' : forall X q, mhsa rel2 hd bo xc X q = tconv nb_circ (fun d => w d.1 d.2) b X q.
  by move=> X q; rewrite ex.
have := T3_heads (nb_circ_no_alias dm) xc0 ex'.
congr (\rank _ <= _)%N; apply: eq_bigl => d; apply/existsP.
by exists (Ordinal H0, Ordinal W0).
Qed.

End Circular.

(** Hypothesis (a) from the sizes: with dil ≥ 1 and a grid longer than the
    span dil·(k − 1) of the kernel on each axis, no two taps are congruent. *)
Lemma tap_off_mod (k dil n : nat) (i j : 'I_k) : (0 < dil)%N -> (dil * k.-1 < n)%N ->
  ((tap_off dil i == tap_off dil j %[mod n])%Z) -> i = j.
Proof.
move=> d0 kn; rewrite /tap_off eqz_modDr eqz_mod_dvd dvdzE => dv; apply/val_inj.
have b : forall u : 'I_k, (u * dil <= dil * k.-1)%N.
  move=> u; rewrite mulnC leq_mul2l -ltnS prednK ?ltn_ord ?orbT //.
  by apply: leq_ltn_trans (ltn_ord u).
wlog ij : i j dv / (i <= j)%N.
  move=> hw; case: (leqP i j) => [|/ltnW ji]; first exact: hw.
  by apply/esym/hw => //; rewrite distnC.
move: dv; rewrite distnEr ?leq_mul2r ?ij ?orbT // => dv.
have : (j * dil - i * dil == 0)%N.
  apply: contraTT dv => nz; rewrite gtnNdvd // ?lt0n //.
  apply: leq_ltn_trans (leq_subr _ _) (leq_ltn_trans (b j) kn).
rewrite subn_eq0 leq_mul2r -[(dil == 0)%N]negbK -lt0n d0 /= => ji.
by apply/eqP; rewrite eqn_leq ij ji.
Qed.

Theorem circular_taps_distinct (H W k1 k2 dil1 dil2 : nat) :
  (0 < dil1)%N -> (0 < dil2)%N -> (dil1 * k1.-1 < H)%N -> (dil2 * k2.-1 < W)%N ->
  forall d1 d2 : tap k1 k2,
    ((delta dil1 dil2 d1).1 == (delta dil1 dil2 d2).1 %[mod H])%Z ->
    ((delta dil1 dil2 d1).2 == (delta dil1 dil2 d2).2 %[mod W])%Z -> d1 = d2.
Proof.
move=> p1 p2 kH kW [i1 j1] [i2 j2] /= e1 e2.
by rewrite (tap_off_mod p1 kH e1) (tap_off_mod p2 kW e2).
Qed.
