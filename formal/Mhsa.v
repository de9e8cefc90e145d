(** Definitions (paper_notes, Conventions and notation): the MHSA layer with
    relative-position bias tables over R ∪ {−∞} (an option type, [None] = −∞),
    extra keys of fixed content, and a convolution written on tokens,
    out_q = Σ_Δ x_{q+Δ} M_Δ + b. Also the softmax facts used by T1–T3. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals topology normedtype sequences exp.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Softmax.
Context {R : realType} {K : finType}.

(** exp of a logit in R ∪ {−∞}: exp(−∞) = 0. *)
Definition ew (o : option R) : R := if o is Some a then expR a else 0.

(** The softmax over the keys of one row of logits. A row with no finite
    logit gives weight 0 to every key (MathComp's x/0 = 0). *)
Definition softmax (l : K -> option R) (j : K) : R := ew (l j) / \sum_i ew (l i).

Lemma ew_ge0 o : 0 <= ew o.
Proof. by case: o => [a|] /=; [exact/ltW/expR_gt0|]. Qed.

Lemma ew_eq0 o : (ew o == 0) = (o == None).
Proof. by case: o => [a|] /=; [rewrite gt_eqF ?expR_gt0|rewrite eqxx]. Qed.

(** The row sums to 1 when some logit is finite, to 0 otherwise. *)
Lemma softmax_sum (l : K -> option R) :
  \sum_j softmax l j = if [exists j, l j != None] then 1 else 0.
Proof.
rewrite -mulr_suml; case: existsP => [[j lj]|nex].
- apply: divff; rewrite (bigD1 j) //= paddr_eq0 ?ew_ge0 ?sumr_ge0 //.
  + by rewrite ew_eq0 (negbTE lj).
  + by move=> i _; exact: ew_ge0.
- have z : forall k, ew (l k) = 0.
    move=> k; apply/eqP; rewrite ew_eq0; apply/negPn/negP => lk.
    by apply: nex; exists k.
  by rewrite (eq_bigr (fun _ => 0)) ?big1_eq ?mul0r // => k _; rewrite z.
Qed.

(** T1's softmax fact: a row with exactly one finite logit puts weight 1 on
    that key and 0 on every other. *)
Lemma softmax_one_hot (l : K -> option R) (j : K) (a : R) :
  l j = Some a -> (forall i, i != j -> l i = None) ->
  forall i, softmax l i = (i == j)%:R.
Proof.
move=> lj lo i; rewrite /softmax (bigD1 j) //= big1 ?addr0; last first.
  by move=> k kj; rewrite lo.
have e0 : ew (l j) != 0 by rewrite ew_eq0 lj.
case: eqP => [->|/eqP ij]; first by rewrite divff.
by rewrite lo // mul0r.
Qed.

(** A row with no finite logit gives every key weight 0. *)
Lemma softmax_none (l : K -> option R) :
  (forall i, l i = None) -> forall i, softmax l i = 0.
Proof. by move=> ln i; rewrite /softmax ln mul0r. Qed.

End Softmax.

Section Layer.
(** Tokens [Tok], extra keys [Ext] (the sink, registers, [cls]), relative
    positions [Rel] (key − query, [rel q t]), heads [Hd]; widths C (input
    token), D (output token), Dk (query/key), Dv (value, D_h). *)
Context {R : realType} {Tok Ext Hd : finType} {Rel : Type}.
Context (rel : Tok -> Tok -> Rel) (C D Dk Dv : nat).

Record head := Head {
  wq : 'M[R]_(C, Dk); bq : 'rV[R]_Dk;
  wk : 'M[R]_(C, Dk); bk : 'rV[R]_Dk;
  wv : 'M[R]_(C, Dv); bv : 'rV[R]_Dv;
  wo : 'M[R]_(Dv, D);
  table : Rel -> option R;    (** B^h[key − query], None = −∞ *)
  xbias : Ext -> option R     (** the logit bias of each extra key *)
}.

Definition key := (Tok + Ext)%type.

(** The content of a key: a token of the input, or an extra key's fixed content. *)
Definition content (xc : Ext -> 'rV[R]_C) (X : Tok -> 'rV[R]_C) (j : key) : 'rV_C :=
  match j with inl t => X t | inr e => xc e end.

Definition bias (h : head) (q : Tok) (j : key) : option R :=
  match j with inl t => table h (rel q t) | inr e => xbias h e end.

(** Logit of query q and key j: q·k/√D_k + B^h[key − query]. *)
Definition logit (h : head) xc X (q : Tok) (j : key) : option R :=
  omap (fun b => ((X q *m wq h + bq h) *m (content xc X j *m wk h + bk h)^T) 0 0
                 / Num.sqrt (Dk%:R) + b) (bias h q j).

Definition attn (h : head) xc X q (j : key) : R := softmax (logit h xc X q) j.

Definition value (h : head) xc X (j : key) : 'rV_Dv := content xc X j *m wv h + bv h.

(** The layer: Σ_h A^h V^h W_O^h + b_O at query token q. *)
Definition mhsa (hd : Hd -> head) (bo : 'rV[R]_D) (xc : Ext -> 'rV[R]_C)
    (X : Tok -> 'rV[R]_C) (q : Tok) : 'rV[R]_D :=
  \sum_h (\sum_j attn (hd h) xc X q j *: value (hd h) xc X j) *m wo (hd h) + bo.

Lemma logit_none h xc X q j : (logit h xc X q j == None) = (bias h q j == None).
Proof. by rewrite /logit; case: bias. Qed.

End Layer.

Section TokenConv.
(** A convolution on tokens: [nb q Δ] is the token at offset Δ from q
    ([None] where it falls into the zero padding), [M Δ] its block. *)
Context {R : ringType} {Tok Off : finType} {C D : nat}.

Definition tconv (nb : Tok -> Off -> option Tok) (M : Off -> 'M[R]_(C, D))
    (b : 'rV[R]_D) (X : Tok -> 'rV[R]_C) (q : Tok) : 'rV[R]_D :=
  \sum_d (if nb q d is Some t then X t *m M d else 0) + b.

End TokenConv.
