"""The settings: the one table of keys, the `.env` file and the one precedence resolver
(flags > environment > `.env` > Invoke config `hub.*` > defaults). Pure but for reading `.env`."""
