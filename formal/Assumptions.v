(** Printed by checks/test_formal.py: the axioms of the main theorems. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Rank Mhsa Sufficiency Necessity Conv2d Circular CircularAlias Strided Layout Patch Width Neighbourhood PatchBox Certificate.
Import GRing.Theory.
Local Open Scope ring_scope.
Print Assumptions minor_rank.
Print Assumptions certificate_heads.
Print Assumptions certificate_patch_strided.
Print Assumptions softmax_one_hot.
Print Assumptions conv_layer_exact.
Print Assumptions T3_block.
Print Assumptions T3_heads.
Print Assumptions T3_width.
Print Assumptions T1_conv2d_zero.
Print Assumptions T3_conv2d_zero.
Print Assumptions T1_conv2d_circular.
Print Assumptions T3_conv2d_circular.
Print Assumptions circular_taps_distinct.
Print Assumptions T3_conv2d_circular_merged.
Print Assumptions flat_layout.
Print Assumptions T2_patch_zero.
Print Assumptions T3_patch_zero.
Print Assumptions T2_patch_strided.
Print Assumptions T3_patch_strided.
Print Assumptions T2_patch_box.
Print Assumptions T3_patch_box.
Print Assumptions neighbourhood_axis.
Print Assumptions nine_offsets_iff.
Print Assumptions N_axis_size.
Print Assumptions N_2d_product.
Print Assumptions N_2d_size.
