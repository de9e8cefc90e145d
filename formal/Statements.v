(** Printed by checks/test_formal.py: the statements of the main theorems. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals.
From ConvAttn Require Import Rank Mhsa Sufficiency Necessity Conv2d Circular CircularAlias Strided Layout Patch Width Neighbourhood PatchBox Certificate.
Import GRing.Theory.
Local Open Scope ring_scope.
Check @minor_rank.
Check @certificate_heads.
Check @certificate_patch_strided.
Check @softmax_one_hot.
Check @conv_layer_exact.
Check @T3_block.
Check @T3_heads.
Check @T3_width.
Check @T1_conv2d_zero.
Check @T3_conv2d_zero.
Check @T1_conv2d_circular.
Check @T3_conv2d_circular.
Check @circular_taps_distinct.
Check @T3_conv2d_circular_merged.
Check @flat_layout.
Check @T2_patch_zero.
Check @T3_patch_zero.
Check @T2_patch_strided.
Check @T3_patch_strided.
Check @T2_patch_box.
Check @T3_patch_box.
Check @neighbourhood_axis.
Check @nine_offsets_iff.
Check @N_axis_size.
Check @N_2d_product.
Check @N_2d_size.
