"""features/data"""
