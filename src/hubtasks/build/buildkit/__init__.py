"""BuildKit through the Engine API: the session hubtasks serves to the daemon (`session`), the
few protobuf messages it speaks (`messages`), the build request (`client`) and its trace
(`trace`)."""
