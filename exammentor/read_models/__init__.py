"""Read models: what others read of the tables a service writes, one module per owner.

``exammentor.read_models.<owner>`` reads only the tables that ``<owner>`` owns and writes
none (:mod:`exammentor.contracts.tables` declares the owners; ``tests/unit/
test_table_ownership.py`` keeps both rules). The gateway never imports a service, so what it
shows of a service's data is read here, in the API's contract models; a service that reads
another's data does so here too, and the read is declared with its reason.

Nothing is re-exported: a reader imports the module of the owner whose data it reads, so
each cross-owner read names its owner.
"""
