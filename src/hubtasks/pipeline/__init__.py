"""gather → plan → execute: what one command line reads (gather, reads only), decides (plan,
pure) and carries out (execute, publish, promotion), with the session they share."""
