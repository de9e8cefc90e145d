(** The certificate chain's links 2 and 3 in one statement (paper_notes, The
    certificate chain): if the minor X[i][j] = M_{rows i}[r j, c j] of the
    blocks, on rows that occur, is non-singular (what the checker verifies),
    then every exact layer under (a) and (b) has at least n heads. For patch
    tokens with a stride the entries are the checker's
    K̃[Δ·P + a − s·b][c, o]. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Rank Mhsa Necessity Conv2d Strided Layout Patch.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

Section Certificate.
Context {R : realType} {Tok Ext Hd Off : finType} {Rel : Type}.
Context (rel : Tok -> Tok -> Rel) (C D Dk Dv : nat).

(** A non-singular n×n minor of the blocks (rows: offsets that occur; columns:
    entries (r j, c j) of the blocks) forces N_h >= n. *)
Theorem certificate_heads (nb : Tok -> Off -> option Tok) (na : no_alias nb)
    (hd : Hd -> @head R Ext Rel C D Dk Dv) bo xc (xc0 : forall e, xc e = 0)
    (M : Off -> 'M[R]_(C, D)) b
    (exact : forall X q, mhsa rel hd bo xc X q = tconv nb M b X q)
    n (rows : 'I_n -> Off) (r : 'I_n -> 'I_C) (c : 'I_n -> 'I_D) :
  (forall i, [exists q, nb q (rows i) != None]) ->
  \det (\matrix_(i, j) M (rows i) (r j) (c j)) != 0 -> (n <= #|Hd|)%N.
Proof.
move=> occ det0; set G := \matrix_(i, k) mxvec (M (rows i)) 0 k.
have minor : mxsub id (fun j => mxvec_index (r j) (c j)) G
             = \matrix_(i, j) M (rows i) (r j) (c j).
  by apply/matrixP => i j; rewrite !mxE mxvecE.
have := minor_rank (r := id) (c := fun j => mxvec_index (r j) (c j)) (G := G).
rewrite minor => /(_ det0) nG; apply: leq_trans nG _.
apply: leq_trans (T3_heads na xc0 exact); apply: mxrankS; apply/row_subP => i.
have -> : row i G = mxvec (M (rows i)) by apply/rowP => k; rewrite !mxE.
by apply: (sumsmx_sup (rows i)) => //; rewrite genmxE.
Qed.

End Certificate.

(** The same for patch tokens with a stride, with the checker's entries
    X[i][j] = K̃[Δ_i·P + a_j − s·b_j][c_j, o_j], Δ_i = off (rows i). *)
Theorem certificate_patch_strided {R : realType}
    (H W P Q s k1 k2 dil1 dil2 pad1 pad2 C D : nat)
    (Off : finType) (off : Off -> int * int) (Hd Ext : finType) (Dk Dv : nat)
    (hd : Hd -> @head R Ext (int * int)%type #|{: 'I_P * 'I_P * 'I_C}|
                 #|{: 'I_Q * 'I_Q * 'I_D}| Dk Dv)
    (bo : 'rV[R]_#|{: 'I_Q * 'I_Q * 'I_D}|) (xc : Ext -> 'rV[R]_#|{: 'I_P * 'I_P * 'I_C}|)
    (w : 'I_k1 -> 'I_k2 -> 'M[R]_(C, D)) (b : 'rV[R]_D)
    n (rows : 'I_n -> Off) (ac : 'I_n -> 'I_P * 'I_P * 'I_C) (bo' : 'I_n -> 'I_Q * 'I_Q * 'I_D) :
  P = (s * Q)%N -> injective off ->
  (forall (g t : pixel H W) (a : 'I_P * 'I_P) (b : 'I_Q * 'I_Q) (d : tap k1 k2),
     delta_pad dil1 dil2 pad1 pad2 d = poff s (rel2 g t) a b -> exists h, off h = rel2 g t) ->
  (forall e, xc e = 0) ->
  (forall x g, mhsa (@rel2 H W) hd bo xc (patchify x) g
               = patchify (conv2d_strided s dil1 dil2 pad1 pad2 w b x) g) ->
  (forall i, [exists g : pixel H W, nb_patch off g (rows i) != None]) ->
  \det (\matrix_(i, j) ktil dil1 dil2 pad1 pad2 w
                         (poff s (off (rows i)) (ac j).1 (bo' j).1) (ac j).2 (bo' j).2) != 0 ->
  (n <= #|Hd|)%N.
Proof.
move=> sQ offi cov xc0 ex occ det0.
have ex' : forall X g, mhsa (@rel2 H W) hd bo xc X g
    = tconv (nb_patch off) (fun h => patch_block P Q s dil1 dil2 pad1 pad2 w (off h))
            (patch_bias Q b) X g.
  by move=> X g; have [x <-] := patchify_onto X; rewrite ex patch_tconv.
apply: (certificate_heads (nb_patch_no_alias offi) xc0 ex' (r := fun j => enum_rank (ac j))
          (c := fun j => enum_rank (bo' j)) occ).
by congr (\det _ != 0): det0; apply/matrixP => i j; rewrite !mxE !enum_rankK.
Qed.
