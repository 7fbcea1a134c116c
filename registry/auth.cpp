// Placeholder: bearer-token access control (issue 7).
