(** Token contents as row vectors indexed by a finite type: [flat f] lists
    f over the enumeration of T, [flatmx] a matrix the same way on both sides;
    for 'I_P * 'I_P * 'I_C the enumeration is row-major, (a1, a2, c) at
    (a1·P + a2)·C + c, PyTorch's `b c (h p1) (w p2) -> b (h w) (p1 p2 c)`. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Lemma index_allpairs (T1 T2 : eqType) (s1 : seq T1) (s2 : seq T2) x1 x2 :
  x1 \in s1 -> x2 \in s2 ->
  index (x1, x2) [seq (y1, y2) | y1 <- s1, y2 <- s2] = index x1 s1 * size s2 + index x2 s2.
Proof.
move=> + x2s; elim: s1 => // y s IH; rewrite inE allpairs_cons index_cat.
have [<- _|yx /= xs] := eqP.
  have pinj : injective (pair x1 : T2 -> T1 * T2) by move=> u v [].
  by rewrite (map_f (pair x1) x2s) (index_map pinj) /= eqxx.
have -> : ((x1, x2) \in [seq (y, y2) | y2 <- s2]) = false.
  by apply/negbTE/mapP => -[z _ [e _]]; case: yx.
have /negbTE -> : y != x1 by apply/eqP => e; exact: yx (esym e).
by rewrite size_map IH // mulSn addnA.
Qed.

Lemma val_enum_rank (T : finType) (x : T) : val (enum_rank x) = index x (enum T).
Proof.
rewrite /enum_rank /enum_rank_in val_insubd.
by rewrite ifT // cardE index_mem mem_enum.
Qed.

Lemma index_enum_ord n (i : 'I_n) : index i (enum 'I_n) = i.
Proof.
have e := nth_iota 0 0 (ltn_ord i); rewrite add0n in e.
rewrite -(index_map val_inj) val_enum_ord -[val i]/(nat_of_ord i) -{1}e.
by rewrite index_uniq ?size_iota ?iota_uniq.
Qed.

Lemma enum_prod (T1 T2 : finType) :
  enum {: T1 * T2} = [seq (x1, x2) | x1 <- enum T1, x2 <- enum T2].
Proof. by rewrite [LHS]enumT unlock. Qed.

(** The rank of (a1, a2, c) in the enumeration: (a1·P + a2)·C + c. *)
Lemma enum_rank_layout P C (a1 a2 : 'I_P) (c : 'I_C) :
  val (enum_rank ((a1, a2, c) : 'I_P * 'I_P * 'I_C)) = (a1 * P + a2) * C + c.
Proof.
rewrite val_enum_rank enum_prod index_allpairs ?mem_enum // enum_prod index_allpairs ?mem_enum //.
by rewrite !index_enum_ord -!cardE !card_ord.
Qed.

Import GRing.Theory.
Local Open Scope ring_scope.

Section Flat.
Context {R : ringType}.

(** A row vector indexed by a finite type T, in the order of [enum T]. *)
Definition flat (T : finType) (f : T -> R) : 'rV[R]_#|T| := \row_k f (enum_val k).

Definition flatmx (T U : finType) (f : T -> U -> R) : 'M[R]_(#|T|, #|U|) :=
  \matrix_(k, l) f (enum_val k) (enum_val l).

Lemma flat_mulmxE (T U : finType) (f : T -> R) (g : T -> U -> R) l :
  (flat f *m flatmx g) 0 l = \sum_t f t * g t (enum_val l).
Proof.
rewrite mxE (reindex (@enum_val T predT)) /=; last exact/onW_bij/enum_val_bij.
by apply: eq_bigr => k _; rewrite !mxE.
Qed.

End Flat.

(** The token layout: entry number (a1·P + a2)·C + c of [flat f] is f (a1, a2, c),
    as in PyTorch's `(p1 p2 c)`. *)
Theorem flat_layout (R : ringType) P C (f : 'I_P * 'I_P * 'I_C -> R) (a1 a2 : 'I_P) (c : 'I_C)
    (k : 'I_#|{: 'I_P * 'I_P * 'I_C}|) :
  val k = ((a1 * P + a2) * C + c)%N -> flat f 0 k = f (a1, a2, c).
Proof.
move=> kv; have -> : k = enum_rank ((a1, a2, c) : 'I_P * 'I_P * 'I_C).
  by apply/val_inj; rewrite kv enum_rank_layout.
by rewrite mxE enum_rankK.
Qed.
