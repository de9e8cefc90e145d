(** T3's head-width bound: under (a) and (b), the stacked blocks of an exact
    layer have rank at most Σ_h rank(W_V^h W_O^h) <= N_h·D_v, stacked
    vertically (the sum of the row spaces of the M_Δ, the rows of [M_Δ1; M_Δ2; …])
    and horizontally (the sum of the row spaces of the M_Δᵀ, the columns of
    [M_Δ1 M_Δ2 …]). A corollary of [T3_block]. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Mhsa Necessity.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

Section Width.
Context {R : realType} {Tok Ext Hd Off : finType} {Rel : Type}.
Context (rel : Tok -> Tok -> Rel) (C D Dk Dv : nat).

Lemma rank_sumsmx_leq (I : finType) m n (A : I -> 'M[R]_(m, n)) :
  (\rank (\sum_i <<A i>>) <= \sum_i \rank (A i))%N.
Proof.
elim/big_ind2: _ => [|A1 m1 B n' lA lB|i _].
- by rewrite mxrank0.
- by apply: leq_trans (mxrank_adds_leqif A1 B).1 (leq_add lA lB).
- by rewrite mxrank_gen.
Qed.

(** If every M_Δ that occurs is a combination of the maps W_h, the sum of
    their row spaces lies in the sum of those of the W_h. *)
Lemma sum_blocks_sub (P : pred Off) m n (M : Off -> 'M[R]_(m, n)) (Wh : Hd -> 'M[R]_(m, n))
    (a : Off -> Hd -> R) : (forall d, P d -> M d = \sum_h a d h *: Wh h) ->
  (\sum_(d | P d) <<M d>> <= \sum_h <<Wh h>>)%MS.
Proof.
move=> Me; apply/sumsmx_subP => d Pd; rewrite genmxE (Me d Pd).
apply: summx_sub => h _; apply: scalemx_sub.
by apply: (sumsmx_sup h) => //; rewrite genmxE.
Qed.

(** T3, head width: for an exact layer under (a) and (b), the blocks of the
    offsets that occur, stacked vertically or horizontally, have rank at most
    Σ_h rank(W_V^h W_O^h), which is at most N_h·D_v. *)
Theorem T3_width (nb : Tok -> Off -> option Tok) (na : no_alias nb)
    (hd : Hd -> @head R Ext Rel C D Dk Dv) bo xc (xc0 : forall e, xc e = 0)
    (M : Off -> 'M[R]_(C, D)) b
    (exact : forall X q, mhsa rel hd bo xc X q = tconv nb M b X q) :
  [/\ (\rank (\sum_(d | [exists q, nb q d != None]) <<M d>>)
         <= \sum_h \rank (wv (hd h) *m wo (hd h)))%N,
      (\rank (\sum_(d | [exists q, nb q d != None]) <<(M d)^T>>)
         <= \sum_h \rank (wv (hd h) *m wo (hd h)))%N
    & (\sum_h \rank (wv (hd h) *m wo (hd h)) <= #|Hd| * Dv)%N].
Proof.
set Wh := fun h => wv (hd h) *m wo (hd h).
pose a d h := if [pick qt | nb qt.1 d == Some qt.2] is Some qt
              then attn rel (hd h) xc (fun _ => 0) qt.1 (inl qt.2) else 0.
have Me : forall d, [exists q, nb q d != None] -> M d = \sum_h a d h *: Wh h.
  move=> d /existsP [q nq]; rewrite /a; case: pickP => [[q' t] /= /eqP E|none].
    exact: (T3_block na xc0 exact E).
  by move: nq; case E: (nb q d) => [t|] //; have := none (q, t); rewrite /= E eqxx.
split.
- apply: leq_trans (mxrankS (sum_blocks_sub Me)) _; exact: rank_sumsmx_leq.
- have MeT : forall d, [exists q, nb q d != None] ->
      (M d)^T = \sum_h a d h *: (Wh h)^T.
    by move=> d Pd; rewrite (Me d Pd) linear_sum; apply: eq_bigr => h _; rewrite linearZ.
  apply: leq_trans (mxrankS (sum_blocks_sub MeT)) _.
  by apply: leq_trans (rank_sumsmx_leq _) _; under eq_bigr do rewrite mxrank_tr.
- rewrite -sum_nat_const; apply: leq_sum => h _.
  by apply: leq_trans (mxrankM_maxl _ _) (rank_leq_col _).
Qed.

End Width.
