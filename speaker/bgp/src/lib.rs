//! Sans-IO BGP.
