(** The rank link of the certificates (paper_notes, Certificates): a non-singular
    n×n minor of G forces rank G >= n. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

(** [mxsub r c G] is the minor of G on rows [r i] and columns [c j]. *)
Theorem minor_rank (F : fieldType) (m p n : nat) (G : 'M[F]_(m, p))
    (r : 'I_n -> 'I_m) (c : 'I_n -> 'I_p) :
  \det (mxsub r c G) != 0 -> (n <= \rank G)%N.
Proof.
move=> detNZ.
have eqA : mxsub r c G = rowsub r 1%:M *m G *m colsub c 1%:M.
  by rewrite mulmx_colsub mulmx1 mul_rowsub_mx mul1mx; apply/matrixP=> i j; rewrite !mxE.
have rkA : \rank (mxsub r c G) = n by apply: mxrank_unit; rewrite unitmxE unitfE.
rewrite -{1}rkA eqA; apply: leq_trans (mxrankM_maxl _ _) _; exact: mxrankM_maxr.
Qed.
