(** Necessity (T3): an MHSA layer equal to the convolution on all inputs, with
    (a) no two offsets landing on the same key and (b) zero-content extra keys,
    has every block M_Δ in the span of its N_h maps W_V^h W_O^h, so
    N_h >= dim span{M_Δ}. The proof follows paper_notes: a single token εu,
    the exact difference, and continuity of the softmax at ε = 0. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.classical Require Import boolp classical_sets.
From mathcomp.analysis Require Import reals topology normedtype sequences exp.
From ConvAttn Require Import Mhsa.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Import numFieldNormedType.Exports.
Local Open Scope classical_set_scope.
Local Open Scope ring_scope.

Section Limits.
Context {R : realType}.

Lemma cvg_bigsum (T : Type) (F : set (set T)) {FF : Filter F}
    (I : finType) (f : I -> T -> R) (a : I -> R) :
  (forall i, f i x @[x --> F] --> a i) ->
  (\sum_i f i x) @[x --> F] --> \sum_i a i.
Proof.
move=> fa.
have gen : forall s : seq I,
    (\sum_(i <- s) f i x) @[x --> F] --> \sum_(i <- s) a i.
  elim=> [|i s IH].
  - rewrite big_nil.
    have -> : (fun x => \sum_(i <- [::]) f i x) = fun _ => 0.
      by apply: funext => x; rewrite big_nil.
    exact: cvg_cst.
  - rewrite big_cons.
    have -> : (fun x => \sum_(j <- i :: s) f j x) = (fun x => f i x + \sum_(j <- s) f j x).
      by apply: funext => x; rewrite big_cons.
    exact: cvgD.
exact: gen.
Qed.

Lemma cvg_affine_dot n (a b c d : 'rV[R]_n) :
  ((x *: a + b) *m (x *: c + d)^T) 0 0 @[x --> (0:R)] -->
  ((0 *: a + b) *m (0 *: c + d)^T) 0 0.
Proof.
have E : forall y : R, ((y *: a + b) *m (y *: c + d)^T) 0 0 =
    \sum_k (y * a 0 k + b 0 k) * (y * c 0 k + d 0 k).
  by move=> y; rewrite !mxE; apply: eq_bigr => k _; rewrite !mxE.
have lin : forall p r : R, (x * p + r) @[x --> (0:R)] --> 0 * p + r.
  move=> p r; apply: cvgD; (try exact: nbhs_filter); (try exact: cvg_cst);
  apply: cvgMl; (try exact: nbhs_filter); exact: cvg_id.
rewrite (funext E) E; apply: cvg_bigsum => k.
by apply: cvgM; (try exact: nbhs_filter); exact: lin.
Qed.

Lemma cvg_cst0 (c : R) : (fun _ : R => c) x @[x --> (0:R)] --> c.
Proof. exact: (@cvg_cst _ c R (nbhs (0:R)) _). Qed.

(** A function continuous at 0 and constant off 0 takes that constant at 0. *)
Lemma cont_const_off0 (g : R -> R) (c : R) :
  g x @[x --> (0:R)] --> g 0 -> (forall x, x != 0 -> g x = c) -> g 0 = c.
Proof.
move=> gc gx.
have h1 : (g \o harmonic) @ \oo --> g 0 := cvg_comp cvg_harmonic gc.
have eqc : g \o harmonic = fun _ => c.
  by apply: funext => m /=; apply: gx; rewrite gt_eqF // harmonic_gt0.
rewrite eqc in h1.
have h2 : (fun _ : nat => c) @ \oo --> c := @cvg_cst _ c nat \oo eventually_filter.
exact: (@cvg_unique _ (@Rhausdorff R) ((fun _ : nat => c) @ \oo) (fmap_proper_filter _ _) (g 0) c h1 h2).
Qed.

End Limits.

Section T3.
Context {R : realType} {Tok Ext Hd Off : finType} {Rel : Type}.
Context (rel : Tok -> Tok -> Rel) (C D Dk Dv : nat).

(** The input with the single non-zero token v at t. *)
Definition single (t : Tok) (v : 'rV[R]_C) : Tok -> 'rV[R]_C :=
  fun t' => if t' == t then v else 0.

Lemma attn_sum_indep (h : @head R Ext Rel C D Dk Dv) xc X Y q :
  \sum_j attn rel h xc X q j = \sum_j attn rel h xc Y q j.
Proof.
rewrite /attn !softmax_sum; congr (if _ then _ else _).
by apply: eq_existsb => j; rewrite !logit_none.
Qed.

Lemma head_single (h : @head R Ext Rel C D Dk Dv) xc (xc0 : forall e, xc e = 0) t v q :
  \sum_j attn rel h xc (single t v) q j *: value h xc (single t v) j
  = attn rel h xc (single t v) q (inl t) *: (v *m wv h)
    + (\sum_j attn rel h xc (single t v) q j) *: bv h.
Proof.
rewrite /value; under eq_bigr do rewrite scalerDr.
rewrite big_split /= -scaler_suml; congr (_ + _).
rewrite (bigD1 (inl t)) //= /single eqxx big1 ?addr0 // => -[t'|e] /= ne.
- have /negbTE -> : t' != t by apply: contraNneq ne => ->.
  by rewrite mul0mx scaler0.
- by rewrite xc0 mul0mx scaler0.
Qed.

Lemma mhsa_single (hd : Hd -> @head R Ext Rel C D Dk Dv) bo xc
    (xc0 : forall e, xc e = 0) t v q :
  mhsa rel hd bo xc (single t v) q =
  \sum_h attn rel (hd h) xc (single t v) q (inl t) *: (v *m (wv (hd h) *m wo (hd h)))
  + (\sum_h ((\sum_j attn rel (hd h) xc (fun _ => 0) q j) *: bv (hd h)) *m wo (hd h) + bo).
Proof.
rewrite /mhsa addrA -big_split; congr (_ + _); apply: eq_bigr => h _.
rewrite head_single // mulmxDl (attn_sum_indep _ _ _ (fun _ => 0)).
by rewrite -scalemxAl mulmxA.
Qed.

(** Hypothesis (a): no two offsets of a query land on the same key. *)
Definition no_alias (nb : Tok -> Off -> option Tok) :=
  forall q d1 d2 t, nb q d1 = Some t -> nb q d2 = Some t -> d1 = d2.

Lemma tconv_single (nb : Tok -> Off -> option Tok) (na : no_alias nb)
    (M : Off -> 'M[R]_(C, D)) b t v q d :
  nb q d = Some t -> tconv nb M b (single t v) q = v *m M d + b.
Proof.
move=> E; rewrite /tconv (bigD1 d) //= E /single eqxx big1 ?addr0 // => d' ne.
case E': (nb q d') => [t'|] //; case: (t' =P t) => [tt|_]; last by rewrite mul0mx.
by rewrite tt in E'; rewrite (na _ _ _ _ E' E) eqxx in ne.
Qed.

Lemma single_scale t (u : 'rV[R]_C) (x : R) t' : single t (x *: u) t' = x *: single t u t'.
Proof. by rewrite /single; case: eqP; rewrite ?scaler0. Qed.

Lemma content_scale (xc : Ext -> 'rV[R]_C) (xc0 : forall e, xc e = 0) t (u : 'rV[R]_C) (x : R) j :
  content xc (single t (x *: u)) j = x *: content xc (single t u) j.
Proof. by case: j => [t'|e] /=; rewrite ?single_scale // xc0 scaler0. Qed.

(** ε ↦ A^h_qj(εu e_t) is continuous at ε = 0. *)
Lemma attn_cont (h : @head R Ext Rel C D Dk Dv) xc (xc0 : forall e, xc e = 0) t u q j :
  attn rel h xc (single t (x *: u)) q j @[x --> (0:R)] -->
  attn rel h xc (single t (0 *: u)) q j.
Proof.
set a := single t u q *m wq h.
have L : forall x i, logit rel h xc (single t (x *: u)) q i =
    omap (fun b0 => ((x *: a + bq h) *m (x *: (content xc (single t u) i *m wk h) + bk h)^T) 0 0
                    / Num.sqrt (Dk%:R) + b0) (bias rel h q i).
  by move=> x i; rewrite /logit content_scale // single_scale -!scalemxAl.
have ewc : forall i, ew (logit rel h xc (single t (x *: u)) q i) @[x --> (0:R)] -->
                     ew (logit rel h xc (single t (0 *: u)) q i).
  move=> i; rewrite L; rewrite (funext (fun x => congr1 ew (L x i))) /=.
  case: (bias rel h q i) => [b0|] /=; last exact: cvg_cst0.
  apply: cvg_comp; last exact: continuous_expR.
  apply: cvgD; (try exact: nbhs_filter); (try exact: cvg_cst0).
  apply: cvgMl; (try exact: nbhs_filter); exact: cvg_affine_dot.
rewrite /attn /softmax.
have [/existsP [i bi]|nob] := boolP [exists i, bias rel h q i != None].
- apply: cvgM; (try exact: nbhs_filter); first exact: ewc.
  apply: cvgV; (try exact: nbhs_filter); last exact: cvg_bigsum.
  rewrite (bigD1 i) //= paddr_eq0 ?ew_ge0 ?sumr_ge0 //.
  + by rewrite ew_eq0 logit_none (negbTE bi).
  + by move=> k _; exact: ew_ge0.
- have N0 : forall x i, logit rel h xc (single t (x *: u)) q i = None.
    move=> x i; apply/eqP; rewrite logit_none; apply/negPn/negP => bi.
    by move/negP: nob; apply; apply/existsP; exists i.
  have -> : (fun x => ew (logit rel h xc (single t (x *: u)) q j) /
     \sum_i ew (logit rel h xc (single t (x *: u)) q i)) = fun _ => 0.
    by apply: funext => x; rewrite N0 /= mul0r.
  rewrite N0 /= mul0r; exact: cvg_cst0.
Qed.

(** T3, blockwise: every block M_Δ of an offset that occurs is a combination
    Σ_h a^h W_V^h W_O^h with position-only weights a^h (the attention at the
    zero input). Hypotheses: (a) [no_alias nb], (b) zero-content extra keys,
    and the layer equals the convolution on every input at every token. *)
Theorem T3_block (nb : Tok -> Off -> option Tok) (na : no_alias nb)
    (hd : Hd -> @head R Ext Rel C D Dk Dv) bo xc (xc0 : forall e, xc e = 0)
    (M : Off -> 'M[R]_(C, D)) b
    (exact : forall X q, mhsa rel hd bo xc X q = tconv nb M b X q)
    q t d : nb q d = Some t ->
  M d = \sum_h attn rel (hd h) xc (fun _ => 0) q (inl t) *: (wv (hd h) *m wo (hd h)).
Proof.
move=> E.
have key : forall v, v *m M d =
    \sum_h attn rel (hd h) xc (single t v) q (inl t) *: (v *m (wv (hd h) *m wo (hd h))).
  move=> v; have := exact (single t v) q.
  rewrite mhsa_single // (tconv_single na _ _ _ E).
  have := exact (single t 0) q.
  rewrite mhsa_single // (tconv_single na _ _ _ E) mul0mx add0r.
  under eq_bigr do rewrite mul0mx scaler0.
  by rewrite big1_eq add0r => -> /addIr.
apply/matrixP => i k; rewrite summxE.
set g := fun x : R => \sum_h attn rel (hd h) xc (single t (x *: delta_mx 0 i)) q (inl t)
                     * (wv (hd h) *m wo (hd h)) i k.
have g0 : g 0 = M d i k.
  apply: cont_const_off0.
    apply: (cvg_bigsum (FF := nbhs_filter (0:R))) => h; apply: cvgMl; (try exact: nbhs_filter).
    exact: attn_cont.
  move=> x x0; have := key (x *: delta_mx 0 i).
  under eq_bigr do rewrite -scalemxAl scalerA mulrC -scalerA.
  rewrite -scaler_sumr -scalemxAl => /(scalerI x0) /(congr1 (fun m : 'rV[R]_D => m 0 k)).
  rewrite -rowE mxE summxE => ->; rewrite /g; apply: eq_bigr => h _.
  by rewrite [RHS]mxE -rowE [in RHS]mxE.
rewrite -g0 /g; apply: eq_bigr => h _; rewrite [RHS]mxE.
have -> : single t (0 *: delta_mx 0 i) = fun _ => 0.
  by apply: funext => t'; rewrite single_scale scale0r.
by [].
Qed.

(** T3: under (a) and (b), an exact layer's heads span every block that
    occurs, so N_h = #|Hd| >= dim span{mxvec M_Δ}. *)
Theorem T3_heads (nb : Tok -> Off -> option Tok) (na : no_alias nb)
    (hd : Hd -> @head R Ext Rel C D Dk Dv) bo xc (xc0 : forall e, xc e = 0)
    (M : Off -> 'M[R]_(C, D)) b
    (exact : forall X q, mhsa rel hd bo xc X q = tconv nb M b X q) :
  (\rank (\sum_(d | [exists q, nb q d != None]) <<mxvec (M d)>>) <= #|Hd|)%N.
Proof.
set W := fun h => wv (hd h) *m wo (hd h).
have sub : (\sum_(d | [exists q, nb q d != None]) <<mxvec (M d)>>
            <= \sum_h <<mxvec (W h)>>)%MS.
  apply/sumsmx_subP => d /existsP [q]; case E: (nb q d) => [t|] // _.
  rewrite genmxE (T3_block na xc0 exact E) linear_sum /=.
  apply: summx_sub => h _; rewrite linearZ /=; apply: scalemx_sub.
  by apply: (sumsmx_sup h) => //; rewrite genmxE.
apply: leq_trans (mxrankS sub) _.
rewrite -sum1_card.
elim/big_ind2: _ => [|A m B n' lA lB|h _].
- by rewrite mxrank0.
- by apply: leq_trans (mxrank_adds_leqif A B).1 (leq_add lA lB).
- by rewrite mxrank_gen rank_leq_row.
Qed.

End T3.
