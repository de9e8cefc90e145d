Rank.vo Rank.glob Rank.v.beautified Rank.required_vo: Rank.v 
Rank.vio: Rank.v 
Rank.vos Rank.vok Rank.required_vos: Rank.v 
Mhsa.vo Mhsa.glob Mhsa.v.beautified Mhsa.required_vo: Mhsa.v 
Mhsa.vio: Mhsa.v 
Mhsa.vos Mhsa.vok Mhsa.required_vos: Mhsa.v 
Sufficiency.vo Sufficiency.glob Sufficiency.v.beautified Sufficiency.required_vo: Sufficiency.v Mhsa.vo
Sufficiency.vio: Sufficiency.v Mhsa.vio
Sufficiency.vos Sufficiency.vok Sufficiency.required_vos: Sufficiency.v Mhsa.vos
Necessity.vo Necessity.glob Necessity.v.beautified Necessity.required_vo: Necessity.v Mhsa.vo
Necessity.vio: Necessity.v Mhsa.vio
Necessity.vos Necessity.vok Necessity.required_vos: Necessity.v Mhsa.vos
Conv2d.vo Conv2d.glob Conv2d.v.beautified Conv2d.required_vo: Conv2d.v Mhsa.vo Sufficiency.vo Necessity.vo
Conv2d.vio: Conv2d.v Mhsa.vio Sufficiency.vio Necessity.vio
Conv2d.vos Conv2d.vok Conv2d.required_vos: Conv2d.v Mhsa.vos Sufficiency.vos Necessity.vos
