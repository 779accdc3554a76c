"""Protected aliases: their policies, approval requests as records, and the guard every move of an alias passes."""
