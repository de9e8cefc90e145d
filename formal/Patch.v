(** Patch tokens (T2, and T1–T3 with a stride): an (H·P)×(W·P) image cut into
    H×W patches of P×P pixels, a token's content the vector of its P²·C values
    in the layout (p1, p2, c); outputs are patches of Q×Q pixels of D channels,
    Q = P/s for the stride s. The blocks
    M_Δ[(a, c), (b, o)] = K̃[Δ·P + a − s·b][c, o] (paper_notes, Strided
    convolutions), one head per offset Δ of a set covering N, and the patch
    layer equals the pixel convolution read in patch layout; T3 for patches. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.classical Require Import boolp.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Mhsa Sufficiency Necessity Conv2d Strided Layout.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

(** Pixel a of patch g along an axis of n patches of P pixels: g·P + a. *)
Lemma ppos_subproof n P (g : 'I_n) (a : 'I_P) : (g * P + a < n * P)%N.
Proof.
by apply: (@leq_trans (g.+1 * P)); [rewrite mulSn [(P + _)%N]addnC ltn_add2l | rewrite leq_mul2r ltn_ord orbT].
Qed.

Definition ppos n P (g : 'I_n) (a : 'I_P) : 'I_(n * P) := Ordinal (ppos_subproof g a).

Lemma ppos_inj n P (g g' : 'I_n) (a a' : 'I_P) : ppos g a = ppos g' a' -> g = g' /\ a = a'.
Proof.
move/(congr1 val) => /= e; have P0 : (0 < P)%N by apply: leq_ltn_trans (ltn_ord a).
have := congr1 (divn^~ P) e; have := congr1 (modn^~ P) e.
rewrite /= !modnMDl !divnMDl // !modn_small // !divn_small // !addn0.
by move=> ea eg; split; apply: val_inj.
Qed.

(** (t·P + a) − s·(g·Q + b) = (t − g)·P + a − s·b when P = s·Q. *)
Lemma shift_eq (t g a b s Q P : nat) : P = (s * Q)%N ->
  (t * P + a)%:Z - (s * (g * Q + b))%:Z = (t%:Z - g%:Z) * P%:Z + a%:Z - (s * b)%:Z.
Proof.
move=> ->; have -> : (s * (g * Q + b) = g * (s * Q) + s * b)%N by rewrite mulnDr mulnCA.
rewrite !PoszD !PoszM mulrBl opprD addrA; congr (_ - _); by rewrite addrAC.
Qed.

Section Patch.
Context {R : realType} (H W P Q s k1 k2 dil1 dil2 pad1 pad2 C D : nat).

Local Notation ptok := (pixel H W).
Local Notation delta := (delta_pad dil1 dil2 pad1 pad2).

(** Pixel a = (a1, a2) of patch token g. *)
Definition ppix n (g : ptok) (a : 'I_n * 'I_n) : pixel (H * n) (W * n) :=
  (ppos g.1 a.1, ppos g.2 a.2).

(** The patch tokens of an image x: token g holds x at its n×n pixels, c channels. *)
Definition patchify n c (x : pixel (H * n) (W * n) -> 'rV[R]_c) (g : ptok)
    : 'rV[R]_#|{: 'I_n * 'I_n * 'I_c}| :=
  flat (fun i : 'I_n * 'I_n * 'I_c => x (ppix g i.1) 0 i.2).

(** Δ·P + a − s·b: the tap offset linking input pixel a of token q + Δ to
    output pixel b of token q. *)
Definition poff (d : int * int) (a : 'I_P * 'I_P) (b : 'I_Q * 'I_Q) : int * int :=
  (d.1 * P%:Z + a.1%:Z - (s * b.1)%:Z, d.2 * P%:Z + a.2%:Z - (s * b.2)%:Z).

(** The block M_Δ[(a, c), (b, o)] = K̃[Δ·P + a − s·b][c, o]. *)
Definition patch_block (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (d : int * int)
    : 'M[R]_(#|{: 'I_P * 'I_P * 'I_C}|, #|{: 'I_Q * 'I_Q * 'I_D}|) :=
  flatmx (fun (i : 'I_P * 'I_P * 'I_C) (j : 'I_Q * 'I_Q * 'I_D) =>
            ktil dil1 dil2 pad1 pad2 w (poff d i.1 j.1) i.2 j.2).

(** The convolution's bias repeated over the Q×Q output pixels. *)
Definition patch_bias (b : 'rV[R]_D) : 'rV[R]_#|{: 'I_Q * 'I_Q * 'I_D}| :=
  flat (fun j : 'I_Q * 'I_Q * 'I_D => b 0 j.2).

Context (Off : finType) (off : Off -> int * int).

(** Head h's offset off h; the token at g + off h, or None off the grid. *)
Definition nb_patch (g : ptok) (h : Off) : option ptok :=
  at2 H W (g.1%:Z + (off h).1, g.2%:Z + (off h).2).

Definition hit_patch (h : Off) (r : int * int) : bool := r == off h.

Lemma hit_patchP g t h : hit_patch h (rel2 g t) = (nb_patch g h == Some t).
Proof.
by rewrite /nb_patch at2P (pair_shift (g.1%:Z, g.2%:Z) (off h) (t.1%:Z, t.2%:Z)) eq_sym.
Qed.

Lemma nb_patch_no_alias : injective off -> no_alias nb_patch.
Proof.
move=> offi g h1 h2 t E1 E2; apply: offi.
have := hit_patchP g t h1; have := hit_patchP g t h2.
by rewrite E1 E2 eqxx /hit_patch => /eqP <- /eqP <-.
Qed.

(** [off] covers N: every token offset Δ = t − g at which some tap links an
    input pixel of t to an output pixel of g is some head's offset. *)
Definition covers :=
  forall (g t : ptok) (a : 'I_P * 'I_P) (b : 'I_Q * 'I_Q) (d : tap k1 k2),
    delta d = poff (rel2 g t) a b -> exists h, off h = rel2 g t.

Lemma sum_pixels n (V : zmodType) (F : pixel (H * n) (W * n) -> V) :
  \sum_p F p = \sum_(t : ptok) \sum_(a : 'I_n * 'I_n) F (ppix t a).
Proof.
rewrite pair_big /= (reindex (fun ta : ptok * ('I_n * 'I_n) => ppix ta.1 ta.2)) //.
apply/onW_bij/inj_card_bij; last by rewrite !card_prod !card_ord mulnACA.
move=> [[g1 g2] [a1 a2]] [[g1' g2'] [a1' a2']] /= E.
by move: (congr1 fst E) (congr1 snd E) => /= /ppos_inj [-> ->] /ppos_inj [-> ->].
Qed.

Lemma rel_s_ppix (sQ : P = (s * Q)%N) g t (a : 'I_P * 'I_P) (b : 'I_Q * 'I_Q) :
  rel_s s (ppix g b) (ppix t a) = poff (rel2 g t) a b.
Proof.
by rewrite /rel_s /poff /rel2 /= !(shift_eq _ _ _ _ sQ).
Qed.

(** The patch convolution: Σ_h x_{g + off h} M_{off h} + b equals the pixel
    convolution read in patch layout, when P = s·Q, [off] is injective and
    covers N. *)
Lemma patch_tconv (sQ : P = (s * Q)%N) (offi : injective off) (cov : covers)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : pixel (H * P) (W * P) -> 'rV[R]_C) (g : ptok) :
  tconv nb_patch (fun h => patch_block w (off h)) (patch_bias b) (patchify x) g
  = patchify (conv2d_strided s dil1 dil2 pad1 pad2 w b x) g.
Proof.
apply/rowP => k; rewrite /tconv [RHS]mxE conv2d_strided_dense !mxE summxE [in RHS]summxE.
congr (_ + _); set j := enum_val k.
set G := fun (t : ptok) (e : int * int) => \sum_(i : 'I_P * 'I_P * 'I_C)
   x (ppix t i.1) 0 i.2 * ktil dil1 dil2 pad1 pad2 w (poff e i.1 j.1) i.2 j.2.
transitivity (\sum_h \sum_(t : ptok) (if nb_patch g h == Some t then G t (rel2 g t) else 0)).
  apply: eq_bigr => h _; case E: (nb_patch g h) => [t|]; last first.
    by rewrite mxE big1.
  rewrite (bigD1 t) //= eqxx big1 ?addr0; last first.
    by move=> t' tt; have -> : (Some t == Some t') = (t == t') by []; rewrite eq_sym (negbTE tt).
  have /eqP -> : rel2 g t == off h by rewrite -[_ == _]/(hit_patch h _) hit_patchP E.
  by rewrite flat_mulmxE.
rewrite exchange_big sum_pixels; apply: eq_bigr => t _.
have -> : \sum_(a : 'I_P * 'I_P) (x (ppix t a) *m ktil dil1 dil2 pad1 pad2 w
              (rel_s s (ppix g j.1) (ppix t a))) 0 j.2 = G t (rel2 g t).
  rewrite /G (eq_bigr (fun a => \sum_(c : 'I_C) x (ppix t a) 0 c *
      ktil dil1 dil2 pad1 pad2 w (poff (rel2 g t) a j.1) c j.2)) ?pair_big //.
  by move=> a _; rewrite mxE rel_s_ppix.
have [/existsP [h0 /eqP h0t]|none] := boolP [exists h, off h == rel2 g t].
- rewrite (bigD1 h0) -?hit_patchP /hit_patch ?h0t ?eqxx //= big1 ?addr0 // => h hh0.
  rewrite -hit_patchP /hit_patch; case: eqP => // ht; case/eqP: hh0.
  by apply: offi; rewrite h0t.
- have -> : G t (rel2 g t) = 0.
    apply: big1 => i _; rewrite /ktil big1 ?mxE ?mulr0 // => d /eqP dd.
    have [h hd] := cov _ _ _ _ _ dd; by move/negP: none; case; apply/existsP; exists h; rewrite hd.
  by rewrite big1 // => h _; case: ifP.
Qed.

(** Every token input is the patch tokenisation of some image. *)
Lemma patchify_onto c (X : ptok -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_c}|) :
  exists x, patchify x = X.
Proof.
have [inv inv1 _] : bijective (fun ta : ptok * ('I_P * 'I_P) => ppix ta.1 ta.2).
  apply: inj_card_bij; last by rewrite !card_prod !card_ord mulnACA.
  move=> [[g1 g2] [a1 a2]] [[g1' g2'] [a1' a2']] /= E.
  by move: (congr1 fst E) (congr1 snd E) => /= /ppos_inj [-> ->] /ppos_inj [-> ->].
exists (fun p => \row_ci X (inv p).1 0 (enum_rank ((inv p).2, ci))).
apply: funext => g; apply/rowP => k; rewrite !mxE.
by rewrite (inv1 (g, (enum_val k).1)) /= -surjective_pairing enum_valK.
Qed.

(** T1/T2 with a stride, patch tokens: one head per offset of a set covering
    N (W_Q = W_K = 0, table 0 at off h and −∞ elsewhere, W_V = 1,
    W_O = M_(off h), the bias repeated in b_O) equals the strided convolution
    on every image, read in patch layout, at every token; P = s·Q. *)
Theorem T2_patch_strided (Ext : finType) (xc : Ext -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_C}|)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : pixel (H * P) (W * P) -> 'rV[R]_C) (g : ptok) :
  P = (s * Q)%N -> injective off ->
  (forall (g t : ptok) (a : 'I_P * 'I_P) (b : 'I_Q * 'I_Q) (d : tap k1 k2),
     delta d = poff (rel2 g t) a b -> exists h, off h = rel2 g t) ->
  mhsa (@rel2 H W) (conv_head (Ext := Ext) hit_patch (fun h => patch_block w (off h)))
    (patch_bias b) xc (patchify x) g
  = patchify (conv2d_strided s dil1 dil2 pad1 pad2 w b x) g.
Proof.
move=> sQ offi cov; rewrite -patch_tconv //.
by apply: conv_layer_exact; exact: hit_patchP.
Qed.

(** T3 with a stride, patch tokens: under (a) (distinct heads' offsets) and
    (b) (zero-content extra keys), a layer equal to the strided convolution
    on every image, in patch layout, has at least as many heads as the
    dimension of the span of the blocks M_Δ of the offsets that occur. *)
Theorem T3_patch_strided (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext (int * int)%type #|{: 'I_P * 'I_P * 'I_C}|
                 #|{: 'I_Q * 'I_Q * 'I_D}| Dk Dv)
    (bo : 'rV[R]_#|{: 'I_Q * 'I_Q * 'I_D}|) (xc : Ext -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_C}|)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) :
  P = (s * Q)%N -> injective off ->
  (forall (g t : ptok) (a : 'I_P * 'I_P) (b : 'I_Q * 'I_Q) (d : tap k1 k2),
     delta d = poff (rel2 g t) a b -> exists h, off h = rel2 g t) ->
  (forall e, xc e = 0) ->
  (forall x g, mhsa (@rel2 H W) hd bo xc (patchify x) g
               = patchify (conv2d_strided s dil1 dil2 pad1 pad2 w b x) g) ->
  (\rank (\sum_(h | [exists g, nb_patch g h != None]) <<mxvec (patch_block w (off h))>>)
     <= #|Hd|)%N.
Proof.
move=> sQ offi cov xc0 ex.
have ex' : forall X g, mhsa (@rel2 H W) hd bo xc X g
    = tconv nb_patch (fun h => patch_block w (off h)) (patch_bias b) X g.
  by move=> X g; have [x <-] := patchify_onto X; rewrite ex patch_tconv.
exact: (T3_heads (nb_patch_no_alias offi) xc0 ex').
Qed.

End Patch.

Section PatchZero.
Context {R : realType} (H W P k1 k2 dil1 dil2 C D : nat).
Context (Off : finType) (off : Off -> int * int).

(** PyTorch's 'same' padding dil·(k − 1)//2 on each axis. *)
Local Notation pd1 := ((dil1 * k1.-1) %/ 2)%N.
Local Notation pd2 := ((dil2 * k2.-1) %/ 2)%N.

Lemma conv2d_zero_fun (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) b (x : pixel (H * P) (W * P) -> _) :
  conv2d_zero dil1 dil2 w b x = conv2d_strided 1 dil1 dil2 pd1 pd2 w b x.
Proof. by apply: funext => q; exact: conv2d_zero_strided. Qed.

(** T2 (stride 1, zero padding, δ_i = i·dil − dil·(k−1)//2): one head per
    offset of a set covering N, W_V W_O = M_Δ with
    M_Δ[(a, c), (b, o)] = K̃[Δ·P + a − b][c, o]; the patch layer equals the
    pixel convolution read in patch layout, at every token. *)
Theorem T2_patch_zero (Ext : finType) (xc : Ext -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_C}|)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : pixel (H * P) (W * P) -> 'rV[R]_C) (g : pixel H W) :
  injective off ->
  (forall (g t : pixel H W) (a b : 'I_P * 'I_P) (d : tap k1 k2),
     delta dil1 dil2 d = poff 1 (rel2 g t) a b -> exists h, off h = rel2 g t) ->
  mhsa (@rel2 H W)
    (conv_head (Ext := Ext) (hit_patch off)
       (fun h => patch_block P P 1 dil1 dil2 pd1 pd2 w (off h)))
    (patch_bias P b) xc (patchify x) g
  = patchify (conv2d_zero dil1 dil2 w b x) g.
Proof.
by move=> offi cov; rewrite conv2d_zero_fun; apply: T2_patch_strided; rewrite ?mul1n.
Qed.

(** T3 for patch tokens (stride 1, zero padding): under (a) and (b), a layer
    equal to the pixel convolution in patch layout on every image has
    N_h >= dim span{mxvec M_Δ : Δ a head offset that occurs}. *)
Theorem T3_patch_zero (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext (int * int)%type #|{: 'I_P * 'I_P * 'I_C}|
                 #|{: 'I_P * 'I_P * 'I_D}| Dk Dv)
    (bo : 'rV[R]_#|{: 'I_P * 'I_P * 'I_D}|) (xc : Ext -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_C}|)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) :
  injective off ->
  (forall (g t : pixel H W) (a b : 'I_P * 'I_P) (d : tap k1 k2),
     delta dil1 dil2 d = poff 1 (rel2 g t) a b -> exists h, off h = rel2 g t) ->
  (forall e, xc e = 0) ->
  (forall x g, mhsa (@rel2 H W) hd bo xc (patchify x) g
               = patchify (conv2d_zero dil1 dil2 w b x) g) ->
  (\rank (\sum_(h | [exists g : pixel H W, nb_patch off g h != None])
            <<mxvec (patch_block P P 1 dil1 dil2 pd1 pd2 w (off h))>>) <= #|Hd|)%N.
Proof.
move=> offi cov xc0 ex; apply: T3_patch_strided; rewrite ?mul1n //.
by move=> x g; rewrite -conv2d_zero_fun; exact: ex.
Qed.

End PatchZero.
