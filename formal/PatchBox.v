(** T2 and T3 with the box N = {−c_1..c_1} × {−c_2..c_2}, c_a = ⌈dil_a·m_a/P⌉,
    as the heads' offsets: for odd kernels k_a = 2m_a + 1 and 1 <= dil_a <= P
    this box covers N, so (2c_1+1)(2c_2+1) heads suffice (9 when the reach is
    at most P: [nine_offsets_iff]). *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Mhsa Sufficiency Necessity Conv2d Strided Patch Neighbourhood.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

(** Along one axis: if tap i (k = 2m+1, δ_i = i·dil − dil·m) links input pixel
    a of token q + Δ to output pixel b of token q (Δ·P + a − b = δ_i), then
    −c <= Δ <= c. *)
Lemma box_axis (P dil m : nat) (e : int) (a b : 'I_P) (i : 'I_(2 * m).+1) :
  (0 < dil)%N -> (dil <= P)%N ->
  tap_off dil i = e * P%:Z + a%:Z - (1 * b)%:Z ->
  exists u : 'I_(2 * ceil_div (dil * m) P).+1, u%:Z - (ceil_div (dil * m) P)%:Z = e.
Proof.
move=> d0 dP; have P0 : (0 < P)%N by apply: leq_ltn_trans (ltn_ord a).
have [lo hi] := neighbourhood_axis m P0 d0 dP; have [rX _] := ceil_div_bounds (dil * m) P0.
set c := ceil_div (dil * m) P in lo rX *.
rewrite /tap_off /= mul1n; have -> : ((dil * (2 * m)) %/ 2 = dil * m)%N.
  by rewrite mulnCA mulKn.
move=> E.
set T := (b + i * dil + (c * P - dil * m))%N.
have ET : (e + c%:Z) * P%:Z + a%:Z = T%:Z.
  have E' : e * P%:Z + a%:Z = (i * dil)%:Z - (dil * m)%:Z + b%:Z.
    by apply/eqP; rewrite -subr_eq E.
  rewrite /T !PoszD -subzn // mulrDl addrAC E' -PoszM.
  set I := ((i * dil)%:Z); set M := ((dil * m)%:Z).
  by rewrite [b%:Z + I]addrC [I - M + b%:Z]addrAC -!addrA (addrC (- M)).
case Ec: (e + c%:Z) ET => [n|n] ET.
- have nT : (n * P + a = T)%N by apply/eqP; rewrite -eqz_nat PoszD PoszM ET.
  have nle : (n <= 2 * c)%N.
    have := lo b i (ltn_ord b) (ltn_ord i); rewrite /shifted_offset -/c -/T -nT.
    by rewrite divnMDl // divn_small // addn0.
  exists (Ordinal (nle : (n < (2 * c).+1)%N)); by apply/eqP; rewrite /= subr_eq -Ec.
- exfalso; move: ET; rewrite NegzE mulNr => /eqP; rewrite addrC subr_eq => /eqP.
  rewrite -PoszM -PoszD => -[aT]; have := ltn_ord a; rewrite aT ltnNge.
  by rewrite (leq_trans _ (leq_addl _ _)) // leq_pmull.
Qed.

Section Box.
Context {R : realType} (H W P m1 m2 dil1 dil2 C D : nat).

Local Notation c1 := (ceil_div (dil1 * m1) P).
Local Notation c2 := (ceil_div (dil2 * m2) P).
Local Notation k1 := (2 * m1).+1.
Local Notation k2 := (2 * m2).+1.

(** The heads of the box, (2c_1+1)(2c_2+1) of them; head u has offset u − c. *)
Definition box := ('I_(2 * c1).+1 * 'I_(2 * c2).+1)%type.

Definition box_off (u : box) : int * int := (u.1%:Z - c1%:Z, u.2%:Z - c2%:Z).

Lemma box_off_inj : injective box_off.
Proof.
move=> [u1 u2] [v1 v2] [/addIr/eqP E1 /addIr/eqP E2]; move: E1 E2.
by rewrite !eqz_nat => /eqP/val_inj -> /eqP/val_inj ->.
Qed.

Lemma box_covers (d0 : (0 < dil1)%N) (d1 : (dil1 <= P)%N) (e0 : (0 < dil2)%N) (e1 : (dil2 <= P)%N)
    (g t : pixel H W) (a b : 'I_P * 'I_P) (d : tap k1 k2) :
  delta dil1 dil2 d = poff 1 (rel2 g t) a b -> exists h, box_off h = rel2 g t.
Proof.
move=> E; move: (congr1 fst E) (congr1 snd E) => /= E1 E2.
have [u1 U1] := box_axis d0 d1 E1; have [u2 U2] := box_axis e0 e1 E2.
by exists (u1, u2); rewrite /box_off U1 U2; rewrite /rel2.
Qed.

(** T2 with the box: for odd kernels k_a = 2m_a + 1, 1 <= dil_a <= P, stride
    1 and 'same' zero padding, the (2c_1+1)(2c_2+1) heads of offsets
    {−c_1..c_1} × {−c_2..c_2}, W_V W_O = M_Δ, equal the pixel convolution read
    in patch layout at every token. *)
Theorem T2_patch_box (Ext : finType) (xc : Ext -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_C}|)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    (x : pixel (H * P) (W * P) -> 'rV[R]_C) (g : pixel H W) :
  (0 < dil1)%N -> (dil1 <= P)%N -> (0 < dil2)%N -> (dil2 <= P)%N ->
  mhsa (@rel2 H W)
    (conv_head (Ext := Ext) (hit_patch box_off)
       (fun h => patch_block P P 1 dil1 dil2 ((dil1 * k1.-1) %/ 2) ((dil2 * k2.-1) %/ 2)
                   w (box_off h)))
    (patch_bias P b) xc (patchify x) g
  = patchify (conv2d_zero dil1 dil2 w b x) g.
Proof.
move=> d0 d1 e0 e1; apply: T2_patch_zero; first exact: box_off_inj.
exact: box_covers.
Qed.

(** T3 with the box: under (b), a layer equal to the pixel convolution in patch
    layout on every image has N_h >= dim span{mxvec M_Δ : Δ in the box, occurring}. *)
Theorem T3_patch_box (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext (int * int)%type #|{: 'I_P * 'I_P * 'I_C}|
                 #|{: 'I_P * 'I_P * 'I_D}| Dk Dv)
    (bo : 'rV[R]_#|{: 'I_P * 'I_P * 'I_D}|) (xc : Ext -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_C}|)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D) :
  (0 < dil1)%N -> (dil1 <= P)%N -> (0 < dil2)%N -> (dil2 <= P)%N ->
  (forall e, xc e = 0) ->
  (forall x g, mhsa (@rel2 H W) hd bo xc (patchify x) g
               = patchify (conv2d_zero dil1 dil2 w b x) g) ->
  (\rank (\sum_(h | [exists g : pixel H W, nb_patch box_off g h != None])
            <<mxvec (patch_block P P 1 dil1 dil2 ((dil1 * k1.-1) %/ 2) ((dil2 * k2.-1) %/ 2)
                       w (box_off h))>>) <= #|Hd|)%N.
Proof.
move=> d0 d1 e0 e1 xc0 ex; apply: T3_patch_zero => //; first exact: box_off_inj.
exact: box_covers.
Qed.

End Box.
