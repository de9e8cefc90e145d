(** Printed by checks/test_formal.py: the statements and axioms of the main theorems. *)
From ConvAttn Require Import Rank Mhsa Sufficiency Necessity Conv2d.
About minor_rank.
About softmax_one_hot.
About conv_layer_exact.
About T3_block.
About T3_heads.
About T1_conv2d_zero.
About T3_conv2d_zero.
Print Assumptions minor_rank.
Print Assumptions softmax_one_hot.
Print Assumptions conv_layer_exact.
Print Assumptions T3_block.
Print Assumptions T3_heads.
Print Assumptions T1_conv2d_zero.
Print Assumptions T3_conv2d_zero.
