"""features/policy"""
