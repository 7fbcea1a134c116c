// Placeholder: registration address policy (issue 7).
