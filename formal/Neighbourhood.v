(** T2's count along one axis: for an odd kernel k = 2m+1 with dilation
    1 <= dil <= P and reach r = dil·m, the patch offsets
    N = {⌊(p + δ_i)/P⌋ : 0 <= p < P, i < k}, δ_i = i·dil − r, are exactly
    {−c..c} with c = ⌈r/P⌉. Stated shifted by c to stay in nat:
    ⌊(p + i·dil + cP − r)/P⌋ takes exactly the values 0..2c. *)
From mathcomp Require Import all_ssreflect.
From Coq Require Import Lia.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Ltac nlia := repeat match goal with x := _ |- _ => clearbody x end;
  change muln with Nat.mul in *; change addn with Nat.add in *;
  change subn with Nat.sub in *; lia.

(** c = ⌈r/P⌉. *)
Definition ceil_div (r P : nat) := (r + P.-1) %/ P.

Lemma ceil_div_bounds r P : 0 < P ->
  r <= ceil_div r P * P /\ ceil_div r P * P <= r + P.-1.
Proof.
move=> P0; split; last exact: leq_trunc_div.
have e := divn_eq (r + P.-1) P; have md := ltn_pmod (r + P.-1) P0.
rewrite /ceil_div; move: e md; set X := _ * P; set md := _ %% P.
move=> e /ltP md'; apply/leP; rewrite -subn1 in e; move: e.
rewrite -!plusE -!minusE => e; move/ltP: P0 => P0'; lia.
Qed.

(** The shifted offsets of the patch neighbourhood along one axis. *)
Definition shifted_offset (P dil m p i : nat) :=
  (p + i * dil + (ceil_div (dil * m) P * P - dil * m)) %/ P.

Theorem neighbourhood_axis (P dil m : nat) : 0 < P -> 0 < dil -> dil <= P ->
  (forall p i, p < P -> i < (2 * m).+1 ->
     shifted_offset P dil m p i <= 2 * ceil_div (dil * m) P) /\
  (forall e, e <= 2 * ceil_div (dil * m) P ->
     exists p i, [/\ p < P, i < (2 * m).+1 & shifted_offset P dil m p i = e]).
Proof.
move=> P0 d0 dP; have [rX Xr] := ceil_div_bounds (dil * m) P0.
move: rX Xr; rewrite /shifted_offset; set c := ceil_div _ _; set r := dil * m.
move=> rX Xr; split.
  move=> p i pP ik; rewrite -ltnS ltn_divLR // mulSn -mulnA.
  have Y : i * dil <= 2 * r.
    by rewrite /r [dil * m]mulnC mulnA leq_mul2r -ltnS ik orbT.
  move: rX Xr Y pP; set X := c * P; set Y := i * dil.
  rewrite -subn1; move=> /leP h1 /leP h2 /leP h3 /ltP h4; apply/ltP.
  rewrite -!plusE -!minusE -!multE /=; nlia.
move=> e e2c.
set X := c * P in rX Xr *.
have eP : e * P <= 2 * X by rewrite /X mulnA leq_mul2r e2c orbT.
set T := e * P + r - X.
have dT := divn_eq T dil; have mT := ltn_pmod T d0.
have [q2m|q2m] := leqP (T %/ dil) (2 * m).
- exists (T %% dil), (T %/ dil); split; [exact: leq_trans mT dP | exact: q2m | ].
  apply/eqP; rewrite eqn_leq -ltnS ltn_divLR // leq_divRL // mulSn.
  move: dT rX Xr eP mT; set Q := T %/ dil * dil; set md := T %% dil.
  rewrite /T -subn1 => dT /leP h5 /leP h6 /leP h7 /ltP h8; move/leP: dP => h9.
  move/ltP: P0 => h10; move: dT; rewrite -!plusE -!minusE => h11.
  by apply/andP; split; apply/leP; rewrite -?plusE -?minusE; nlia.
- have E2 : (2 * m).+1 * dil = dil + 2 * r.
    by rewrite mulSn -mulnA [m * dil]mulnC.
  have Q2 : (2 * m).+1 * dil <= T %/ dil * dil by rewrite leq_mul2r q2m orbT.
  rewrite E2 in Q2.
  exists (T - 2 * r), (2 * m); split => //.
    move: dT rX Xr eP mT Q2; set Q := T %/ dil * dil; set md := T %% dil.
    rewrite /T -subn1 => dT /leP h12 /leP h13 /leP h14 /ltP h15 /leP h16.
    by move/ltP: P0 => h17; apply/ltP; nlia.
  apply/eqP; rewrite eqn_leq -ltnS ltn_divLR // leq_divRL // mulSn.
  have -> : 2 * m * dil = 2 * r by rewrite -mulnA [m * dil]mulnC.
  move: dT rX Xr eP mT Q2; set Q := T %/ dil * dil; set md := T %% dil.
  rewrite /T -subn1 => dT /leP h19 /leP h20 /leP h21 /ltP h22 /leP h23.
  move/ltP: P0 => h24.
  by apply/andP; split; apply/leP; nlia.
Qed.

(** In 2-D, N = N_1 × N_2 has (2c+1)² elements for a square kernel and patch;
    it has 9 exactly when 1 <= r <= P. *)
Theorem nine_offsets_iff (r P : nat) : 0 < P ->
  (((2 * ceil_div r P).+1 ^ 2 == 9) = (0 < r <= P)).
Proof.
move=> P0; have [lo hi] := ceil_div_bounds r P0.
move: lo hi; case: (ceil_div r P) => [|[|c']] lo hi.
- by move: lo; rewrite mul0n leqn0 => /eqP ->.
- move: lo hi; rewrite mul1n -subn1 => /leP lo /leP hi; move/ltP: P0 => h0.
  by apply/esym/andP; split; apply/leP; nlia.
- have h2 : 2 * P <= c'.+2 * P by rewrite leq_mul2r ltnS ltnS leq0n orbT.
  have h5 : 5 <= (2 * c'.+2).+1 by rewrite !mulnS.
  have -> : ((2 * c'.+2).+1 ^ 2 == 9) = false.
    apply/negbTE; rewrite expnS expn1 neq_ltn; apply/orP; right.
    by apply: leq_trans (leq_mul h5 h5).
  apply/esym/negbTE; rewrite negb_and; apply/orP; right; rewrite -ltnNge.
  move: hi h2; rewrite -subn1 => /leP hi /leP h2; move/ltP: P0 => h0.
  by apply/ltP; nlia.
Qed.

(** The neighbourhood as a list. Along one axis: the shifted offsets
    ⌊(p + δ_i)/P⌋ + c over the positions p < P and taps i < 2m+1; in 2-D: the
    pairs of them over positions (p1, p2) and taps (i1, i2), i.e.
    N(S, P) = {(⌊(p1 + δ_i1)/P1⌋, ⌊(p2 + δ_i2)/P2⌋)}, shifted by (c1, c2). *)
Definition pos_taps (P m : nat) : seq (nat * nat) :=
  [seq (p, i) | p <- iota 0 P, i <- iota 0 (2 * m).+1].

Definition N_axis (P dil m : nat) : seq nat :=
  undup [seq shifted_offset P dil m u.1 u.2 | u <- pos_taps P m].

Definition N_2d (P1 dil1 m1 P2 dil2 m2 : nat) : seq (nat * nat) :=
  undup [seq (shifted_offset P1 dil1 m1 u.1 u.2, shifted_offset P2 dil2 m2 v.1 v.2)
        | u <- pos_taps P1 m1, v <- pos_taps P2 m2].

Lemma mem_N_axis P dil m e : 0 < P -> 0 < dil -> dil <= P ->
  (e \in N_axis P dil m) = (e <= 2 * ceil_div (dil * m) P).
Proof.
move=> P0 d0 dP; have [lo hi] := neighbourhood_axis m P0 d0 dP.
rewrite mem_undup; apply/mapP/idP.
  case=> [[p i]] /allpairsP [[p' i'] /= [pP ik [-> ->]]] ->.
  move: pP ik; rewrite !mem_iota !add0n !leq0n /= => pP ik.
  by move: ik; rewrite -[0 :: _]/(iota 0 (2 * m).+1) mem_iota add0n => ik; exact: lo.
move=> e2c; have [p [i [pP ik <-]]] := hi e e2c.
by exists (p, i) => //; apply/allpairsP; exists (p, i); rewrite !mem_iota.
Qed.

(** |N_a| = 2⌈r/P⌉ + 1 along each axis (odd k = 2m+1, 1 <= dil <= P, r = dil·m). *)
Theorem N_axis_size P dil m : 0 < P -> 0 < dil -> dil <= P ->
  size (N_axis P dil m) = (2 * ceil_div (dil * m) P).+1.
Proof.
move=> P0 d0 dP; rewrite -(size_iota 0 (2 * ceil_div (dil * m) P).+1).
apply: perm_size; apply: uniq_perm; [exact: undup_uniq | exact: iota_uniq |].
by move=> e; rewrite mem_N_axis // mem_iota add0n ltnS.
Qed.

(** In 2-D, N = N_1 × N_2, so |N| = |N_1|·|N_2| = (2c1+1)(2c2+1). *)
Theorem N_2d_product P1 dil1 m1 P2 dil2 m2 :
  N_2d P1 dil1 m1 P2 dil2 m2 =i [seq (x, y) | x <- N_axis P1 dil1 m1, y <- N_axis P2 dil2 m2]
  /\ size (N_2d P1 dil1 m1 P2 dil2 m2)
     = size (N_axis P1 dil1 m1) * size (N_axis P2 dil2 m2).
Proof.
have memE : N_2d P1 dil1 m1 P2 dil2 m2
    =i [seq (x, y) | x <- N_axis P1 dil1 m1, y <- N_axis P2 dil2 m2].
  move=> [x y]; rewrite mem_undup; apply/allpairsP/allpairsP.
    move=> [[u v] /= [uL vL [-> ->]]].
    by exists (shifted_offset P1 dil1 m1 u.1 u.2, shifted_offset P2 dil2 m2 v.1 v.2);
      rewrite /N_axis !mem_undup; split => //; apply: map_f.
  move=> [[x' y'] /=]; rewrite /N_axis !mem_undup => -[/mapP [u uL ->] /mapP [v vL ->] ->].
  by exists (u, v).
split=> //; rewrite -(size_allpairs pair); apply: perm_size; apply: uniq_perm => //.
- exact: undup_uniq.
- by apply: allpairs_uniq; rewrite ?undup_uniq // => -[? ?] [? ?] _ _ [-> ->].
Qed.

(** |N(S, P)| = (2⌈r1/P1⌉ + 1)(2⌈r2/P2⌉ + 1) in 2-D (odd kernels, 1 <= dil_a <= P_a). *)
Theorem N_2d_size P1 dil1 m1 P2 dil2 m2 :
  0 < P1 -> 0 < dil1 -> dil1 <= P1 -> 0 < P2 -> 0 < dil2 -> dil2 <= P2 ->
  size (N_2d P1 dil1 m1 P2 dil2 m2)
  = (2 * ceil_div (dil1 * m1) P1).+1 * (2 * ceil_div (dil2 * m2) P2).+1.
Proof.
by move=> *; rewrite (N_2d_product P1 dil1 m1 P2 dil2 m2).2 !N_axis_size.
Qed.
