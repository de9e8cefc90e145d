(** Circular padding without hypothesis (a): taps congruent modulo (H, W)
    reach the same key and act as one block, M'_ρ = Σ_{δ ≡ ρ} K[:, :, i, j]ᵀ
    over the residues ρ of the grid (paper_notes, T3 (a)); the circular
    convolution is a token convolution over the residues, which never alias,
    so N_h >= dim span{mxvec M'_ρ} with no hypothesis on the sizes. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Mhsa Necessity Conv2d Circular.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Lemma wrapE n (q : 'I_n) z : (wrap q z)%:Z = (z %% n)%Z.
Proof.
have n0 : (0 < n)%N by apply: leq_ltn_trans (ltn_ord q).
by rewrite /= gez0_abs // modz_ge0 // eqz_nat -lt0n.
Qed.

(** (q + (z mod n)) mod n = (q + z) mod n. *)
Lemma wrap_wrap n (q : 'I_n) (u z : int) : wrap q (u + (wrap q z)%:Z) = wrap q (u + z).
Proof.
apply/eqP; rewrite wrap_eq wrapE modzDmr.
by rewrite wrapE modz_mod.
Qed.

Section CircularAlias.
Context {R : realType} (H W k1 k2 dil1 dil2 C D : nat).

Local Notation pixel := (pixel H W).
Local Notation tap := (tap k1 k2).
Local Notation delta := (delta dil1 dil2).

(** The merged block of residue ρ: the sum of the taps with δ ≡ ρ modulo (H, W). *)
Definition merged (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (r : pixel) : 'M[R]_(C, D) :=
  \sum_(d : tap | (((delta d).1 == r.1%:Z %[mod H]) && ((delta d).2 == r.2%:Z %[mod W]))%Z)
     w d.1 d.2.

(** The token at residue offset ρ from q: q + ρ modulo (H, W). *)
Definition nb_res (q r : pixel) : option pixel :=
  Some (wrap q.1 (q.1%:Z + r.1%:Z), wrap q.2 (q.2%:Z + r.2%:Z)).

Lemma conv2d_circular_merged w b x q :
  conv2d_circular dil1 dil2 w b x q = tconv nb_res (merged w) b x q.
Proof.
rewrite /conv2d_circular /tconv; congr (_ + _).
under [RHS]eq_bigr do rewrite /merged mulmx_sumr.
rewrite (exchange_big_dep predT) //=; apply: eq_bigr => d _.
rewrite (big_pred1 (wrap q.1 (delta d).1, wrap q.2 (delta d).2)) /=.
  by rewrite /nb_res !wrap_wrap.
by move=> [r1 r2] /=; rewrite xpair_eqE !(eq_sym _ (wrap _ _)) !wrap_eq.
Qed.

Lemma nb_res_no_alias : no_alias nb_res.
Proof.
move=> q r1 r2 t [<-] /(congr1 (odflt t)) /= E; move: (congr1 fst E) (congr1 snd E) => /= /eqP e1 /eqP e2.
move: e1 e2; rewrite !wrap_eq !wrapE !modz_mod !eqz_modDl => e1 e2.
have sm : forall n (a : 'I_n), (a%:Z %% n)%Z = a%:Z.
  by move=> n a; rewrite modz_small // ltz_nat ltn_ord andbT.
move: e1 e2; rewrite !sm !eqz_nat => /eqP/val_inj e1 /eqP/val_inj e2.
by clear E; case: r1 r2 e1 e2 => [? ?] [? ?] /= -> ->.
Qed.

(** T3 in 2-D, circular padding, any sizes: an MHSA layer whose extra keys have
    zero content and which equals the circular convolution on all inputs has
    at least as many heads as the dimension of the span of the merged blocks. *)
Theorem T3_conv2d_circular_merged (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext (int * int)%type C D Dk Dv) (bo : 'rV[R]_D)
    (xc : Ext -> 'rV[R]_C) (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) :
  (forall e, xc e = 0) ->
  (forall x q, mhsa (@rel2 H W) hd bo xc x q = conv2d_circular dil1 dil2 w b x q) ->
  (\rank (\sum_(r : pixel) <<mxvec (merged w r)>>) <= #|Hd|)%N.
Proof.
move=> xc0 ex.
have ex' : forall X q, mhsa (@rel2 H W) hd bo xc X q = tconv nb_res (merged w) b X q.
  by move=> X q; rewrite ex conv2d_circular_merged.
have := T3_heads nb_res_no_alias xc0 ex'.
by congr (\rank _ <= _)%N; apply: eq_bigl => r; apply/existsP; exists r.
Qed.

End CircularAlias.
