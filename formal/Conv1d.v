(** The 1-D stride-1 convolution with zero padding and PyTorch's offsets
    δ_i = i·dil − dil·(k−1)//2 on a length-L sequence, the 2-D one of
    Conv2d.v on the 1×L grid, and T1 and T3 for it. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals topology normedtype sequences exp.
From ConvAttn Require Import Mhsa Sufficiency Necessity Conv2d.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Conv1d.
Context {R : realType} (L k dil C D : nat).

(** The position q + δ_i, or None in the zero padding. *)
Definition nb1_zero (q : 'I_L) (i : 'I_k) : option 'I_L :=
  ipos L (q%:Z + tap_off dil i).

(** PyTorch's Conv1d(padding='same', padding_mode='zeros', stride 1) on an
    input x : 'I_L -> R^C with tap matrices w i = K[:, :, i]ᵀ (C×D). *)
Definition conv1d_zero (w : 'I_k -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : 'I_L -> 'rV[R]_C) (q : 'I_L) : 'rV[R]_D :=
  \sum_(i : 'I_k) (if nb1_zero q i is Some t then x t *m w i else 0) + b.

(** The 1-D convolution is the 2-D one on the 1×L grid with a 1×k kernel
    (any dil1: the single tap of the first axis has offset 0). *)
Lemma conv1d_as_conv2d (dil1 : nat) (w : 'I_k -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : 'I_L -> 'rV[R]_C) (q : 'I_L) :
  conv1d_zero w b x q
  = conv2d_zero (H := 1) (k1 := 1) dil1 dil (fun _ : 'I_1 => w) b
      (fun p => x p.2) (ord0, q).
Proof.
rewrite /conv1d_zero /conv2d_zero; congr (_ + _).
rewrite [RHS](reindex (fun j : 'I_k => (ord0 : 'I_1, j))) /=; last first.
  by exists snd => [j|[i j]] _ //=; rewrite (ord1 i).
apply: eq_bigr => i _; rewrite /nb_zero /delta /=.
have -> : ipos 1 (0%:Z + tap_off dil1 (ord0 : 'I_1)) = Some ord0.
  by apply/eqP; rewrite ipos_eq /tap_off /= mul0n muln0 div0n.
by rewrite /nb1_zero; case: ipos.
Qed.

(** Relative position of key t from query q: t − q. *)
Definition rel1 (q t : 'I_L) : int := t%:Z - q%:Z.

Definition hit1 (i : 'I_k) (r : int) : bool := r == tap_off dil i.

Lemma hit1P q t i : hit1 i (rel1 q t) = (nb1_zero q i == Some t).
Proof.
by rewrite /hit1 /rel1 /nb1_zero ipos_eq subr_eq addrC [RHS]eq_sym.
Qed.

(** T1 in 1-D, zero padding: the construction (one head per tap, table 0 at
    δ and −∞ elsewhere, W_V W_O = K[:, :, i]ᵀ, the bias in b_O) equals the
    convolution on every input at every position, borders included. *)
Theorem T1_conv1d_zero (Ext : finType) (xc : Ext -> 'rV[R]_C)
    (w : 'I_k -> 'M[R]_(C, D)) (b : 'rV[R]_D) (x : 'I_L -> 'rV[R]_C) q :
  mhsa rel1 (conv_head (Ext := Ext) hit1 w) b xc x q = conv1d_zero w b x q.
Proof. exact: (conv_layer_exact (nb := nb1_zero) hit1P). Qed.

(** With dil >= 1 no two taps reach the same position (hypothesis (a)). *)
Lemma nb1_zero_no_alias : (0 < dil)%N -> no_alias nb1_zero.
Proof.
move=> p q i1 i2 t E1 E2.
have := hit1P q t i1; have := hit1P q t i2.
rewrite E1 E2 eqxx /hit1 => /eqP h2 /eqP h1.
move: h1; rewrite h2 /tap_off => /addIr/eqP.
by rewrite eqz_nat eqn_pmul2r // => /eqP/val_inj.
Qed.

(** T3 in 1-D, zero padding: an MHSA layer whose extra keys have zero
    content and which equals the convolution on all inputs has at least as
    many heads as the dimension of the span of the taps that reach a position. *)
Theorem T3_conv1d_zero (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext int C D Dk Dv) (bo : 'rV[R]_D)
    (xc : Ext -> 'rV[R]_C) (w : 'I_k -> 'M[R]_(C, D)) (b : 'rV[R]_D) :
  (0 < dil)%N -> (forall e, xc e = 0) ->
  (forall x q, mhsa rel1 hd bo xc x q = conv1d_zero w b x q) ->
  (\rank (\sum_(i | [exists q, nb1_zero q i != None]) <<mxvec (w i)>>)
     <= #|Hd|)%N.
Proof.
move=> p xc0 ex.
exact: (T3_heads (nb1_zero_no_alias p) xc0 (M := w) (b := b) ex).
Qed.

End Conv1d.
