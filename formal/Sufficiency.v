(** Sufficiency (T1, T2, Borders): one head per offset Δ, W_Q = W_K = 0, the
    bias table 0 where the key is the token at offset Δ and −∞ elsewhere,
    W_V W_O = M_Δ, the convolution's bias in b_O; equal to the convolution on
    every input at every token, borders included. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.analysis Require Import reals topology normedtype sequences exp.
From ConvAttn Require Import Mhsa.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Construction.
Context {R : realType} {Tok Ext Off : finType} {Rel : Type}.
Context (rel : Tok -> Tok -> Rel) (C D : nat).

(** Head Δ of the construction: W_Q = W_K = 0 (D_k = 1), W_V = 1, W_O = M_Δ,
    table [hit Δ r] ↦ 0, otherwise −∞; every extra key at −∞. *)
Definition conv_head (hit : Off -> Rel -> bool) (M : Off -> 'M[R]_(C, D)) (d : Off)
    : @head R Ext Rel C D 1 C :=
  Head 0 0 0 0 1%:M 0 (M d) (fun r => if hit d r then Some 0 else None) (fun _ => None).

(** The construction equals the token convolution at every token whenever the
    table can tell the target key from its relative position alone:
    [hit Δ (rel q t)] holds exactly when t is the token at offset Δ from q
    (zero padding: r = Δ; circular padding: r ≡ Δ modulo the grid). *)
Theorem conv_layer_exact (nb : Tok -> Off -> option Tok) (hit : Off -> Rel -> bool)
    (hitP : forall q t d, hit d (rel q t) = (nb q d == Some t))
    (M : Off -> 'M[R]_(C, D)) (b : 'rV[R]_D) (xc : Ext -> 'rV[R]_C)
    (X : Tok -> 'rV[R]_C) (q : Tok) :
  mhsa rel (conv_head hit M) b xc X q = tconv nb M b X q.
Proof.
rewrite /mhsa /tconv; congr (_ + _); apply: eq_bigr => d _.
case E: (nb q d) => [t|].
- have one : forall j, attn rel (conv_head hit M d) xc X q j = (j == inl t)%:R.
    apply: softmax_one_hot; first by rewrite /logit /= hitP E eqxx.
    case=> [t'|e] //= ne; rewrite /logit /= hitP E.
    by case: eqP => // -[tt']; move: ne; rewrite tt' eqxx.
  rewrite (bigD1 (inl t)) //= big1 ?addr0; last first.
    by move=> j /negbTE jt; rewrite one jt scale0r.
  by rewrite one eqxx scale1r /value /= mulmx1 addr0.
- rewrite big1 ?mul0mx // => j _.
  rewrite /attn softmax_none ?scale0r // => -[t'|e] //=.
  by rewrite /logit /= hitP E.
Qed.

End Construction.
