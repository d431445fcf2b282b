"""HTTP handlers: parse → validate → call one service function → serialise."""
