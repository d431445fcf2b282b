"""Protocol layer: envelope, directory, signed records, request signatures,
problem registry, vocabulary. Imports crypto, never nacl."""
