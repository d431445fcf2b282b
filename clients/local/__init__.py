"""The officer's device, shared by the CLI (``stafett``) and the web inbox (``stafett ui``).

What both tools must do the same way so that either opens what the other left: the
small JSON records in the state folder (``records``), an oral consent's free text kept
on the device and the consent rules checked before anything is sent (``consents``),
the plaintext bundle's names (``bundle_format``), Stockholm time (``timefmt``) and the
rebuild of the verified key directory (``directory``). Neither tool imports the
other's private helpers; both import these.
"""
