(** The 2-D stride-1 convolution with zero padding and PyTorch's offsets
    δ_i = i·dil − dil·(k−1)//2 (paper_notes, Conventions), on pixel tokens,
    and T1 and T3 for it as corollaries of the token-level theorems. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.classical Require Import boolp classical_sets.
From mathcomp.analysis Require Import reals topology normedtype sequences exp.
From ConvAttn Require Import Mhsa Sufficiency Necessity.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

(** PyTorch's offset of tap i of a kernel axis of size k and dilation dil. *)
Definition tap_off (k dil : nat) (i : 'I_k) : int :=
  (i * dil)%:Z - ((dil * k.-1) %/ 2)%:Z.

(** The index z of an axis of length n, if 0 <= z < n (else it is padding). *)
Definition ipos (n : nat) (z : int) : option 'I_n :=
  if z is Posz m then insub m else None.

Lemma ipos_eq n z (a : 'I_n) : (ipos n z == Some a) = (z == a%:Z).
Proof.
case: z => [m|m] /=; last by [].
case: insubP => [b0 bn bm|nm]; rewrite eqz_nat.
  by rewrite -bm; apply/eqP/eqP => [[->]//|/val_inj ->].
by apply/esym/negbTE; apply: contra nm => /eqP ->; exact: ltn_ord.
Qed.

Section Conv2d.
Context {R : realType} (H W k1 k2 dil1 dil2 C D : nat).

Definition pixel := ('I_H * 'I_W)%type.
Definition tap := ('I_k1 * 'I_k2)%type.

Definition delta (d : tap) : int * int := (tap_off dil1 d.1, tap_off dil2 d.2).

(** The pixel at q + δ, or None in the zero padding. *)
Definition nb_zero (q : pixel) (d : tap) : option pixel :=
  match ipos H (q.1%:Z + (delta d).1), ipos W (q.2%:Z + (delta d).2) with
  | Some a, Some b => Some (a, b) | _, _ => None end.

(** PyTorch's Conv2d(padding='same', padding_mode='zeros', stride 1) on an
    input x : pixel -> R^C with tap matrices w i j = K[:, :, i, j]ᵀ (C×D). *)
Definition conv2d_zero (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : pixel -> 'rV[R]_C) (q : pixel) : 'rV[R]_D :=
  \sum_(d : tap) (if nb_zero q d is Some t then x t *m w d.1 d.2 else 0) + b.

Lemma conv2d_zero_tconv w b x q :
  conv2d_zero w b x q = tconv nb_zero (fun d => w d.1 d.2) b x q.
Proof. by []. Qed.

(** Relative position of key t from query q: t − q. *)
Definition rel2 (q t : pixel) : int * int := (t.1%:Z - q.1%:Z, t.2%:Z - q.2%:Z).

Definition hit2 (d : tap) (r : int * int) : bool := r == delta d.

Lemma hit2P q t d : hit2 d (rel2 q t) = (nb_zero q d == Some t).
Proof.
case: t => [a b]; rewrite /hit2 /rel2 /nb_zero xpair_eqE /=.
rewrite !subr_eq [_ == (delta d).1 + _]eq_sym [_ == (delta d).2 + _]eq_sym.
rewrite ![(delta d).1 + _]addrC ![(delta d).2 + _]addrC -!ipos_eq.
by case: (ipos H _) => [a'|]; case: (ipos W _) => [b'|]; rewrite /= ?andbF.
Qed.

(** T1 in 2-D, zero padding: the construction (one head per tap, table 0 at
    δ and −∞ elsewhere, W_V W_O = K[:, :, i, j]ᵀ, the bias in b_O) equals the
    convolution on every input at every pixel, borders included. *)
Theorem T1_conv2d_zero (Ext : finType) (xc : Ext -> 'rV[R]_C)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) (x : pixel -> 'rV[R]_C) q :
  mhsa rel2 (conv_head (Ext := Ext) hit2 (fun d => w d.1 d.2)) b xc x q
  = conv2d_zero w b x q.
Proof. by rewrite conv2d_zero_tconv; apply: conv_layer_exact; exact: hit2P. Qed.

(** With dil >= 1 no two taps reach the same pixel (hypothesis (a)). *)
Lemma nb_zero_no_alias : (0 < dil1)%N -> (0 < dil2)%N -> no_alias nb_zero.
Proof.
move=> p1 p2 q d1 d2 t E1 E2.
have := hit2P q t d1; have := hit2P q t d2.
rewrite E1 E2 eqxx /hit2 => /eqP h2 /eqP h1.
have : delta d1 = delta d2 by rewrite -h1 -h2.
case: d1 d2 {E1 E2 h1 h2} => [i1 j1] [i2 j2] /= [] /addIr/eqP ei /addIr/eqP ej.
move: ei ej; rewrite !eqz_nat !eqn_pmul2r // => /eqP/val_inj -> /eqP/val_inj ->.
by [].
Qed.

(** T3 in 2-D, zero padding: an MHSA layer whose extra keys have zero
    content and which equals the convolution on all inputs has at least as
    many heads as the dimension of the span of the taps that reach a pixel. *)
Theorem T3_conv2d_zero (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext (int * int)%type C D Dk Dv) (bo : 'rV[R]_D)
    (xc : Ext -> 'rV[R]_C) (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) :
  (0 < dil1)%N -> (0 < dil2)%N -> (forall e, xc e = 0) ->
  (forall x q, mhsa rel2 hd bo xc x q = conv2d_zero w b x q) ->
  (\rank (\sum_(d | [exists q, nb_zero q d != None]) <<mxvec (w d.1 d.2)>>)
     <= #|Hd|)%N.
Proof.
move=> p1 p2 xc0 ex.
have ex' : forall X q, mhsa rel2 hd bo xc X q = tconv nb_zero (fun d => w d.1 d.2) b X q.
  by move=> X q; rewrite ex.
exact: (T3_heads (nb_zero_no_alias p1 p2) xc0 ex').
Qed.

End Conv2d.
